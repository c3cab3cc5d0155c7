"""Sweeps: the list with status and counts, and one sweep's cached state (budgets, columns, version)."""

from __future__ import annotations

from fastapi import APIRouter

from dashboard import serialize
from dashboard.deps import NOT_FOUND, CacheDep, SettingsDep, SweepDep
from dashboard.schemas import SweepDetail, SweepList

router = APIRouter(tags=["sweeps"])


@router.get("/sweeps", response_model=SweepList, summary="All sweeps with status and trial counts")
def list_sweeps(cache: CacheDep) -> SweepList:
    sweeps = [serialize.sweep_out(s) for s in cache.sweeps()]
    sweeps.sort(key=lambda s: s.start_time or "", reverse=True)
    return SweepList(sweeps=sweeps, message=None if sweeps else "no sweeps in this tracking store yet")


@router.get("/sweeps/{sweep}", response_model=SweepDetail, responses=NOT_FOUND,
            summary="One sweep: status, counts, budgets and the data version of the cache")
def get_sweep(data: SweepDep, cache: CacheDep, settings: SettingsDep) -> SweepDetail:
    summary = serialize.sweep_out(cache.resolve(data.sweep_id))
    budgets, columns = cache.memo(data, "detail", (), lambda: (serialize.budgets_of(data.frame),
                                                               [str(c) for c in data.frame.columns]))
    return SweepDetail(**summary.model_dump(), data_version=data.version, running=data.running,
                       n_loaded=len(data.frame), budgets=budgets, columns=columns, page_refresh_s=settings.page_refresh_s)
