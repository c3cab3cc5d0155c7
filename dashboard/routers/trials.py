"""Trials of a sweep (filtered, sorted by any column, paged) and one trial with its curves."""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query

from coe_sweep.analysis import columns as C
from coe_sweep.tracking import NotFound
from dashboard import serialize
from dashboard.deps import NOT_FOUND, CacheDep, LimitQ, OffsetQ, SweepDep, invalid_query
from dashboard.filters import BudgetQ, FamilyQ, StatusQ, apply_filters, describe
from dashboard.routers.trialview import find_trial
from dashboard.schemas import TrialDetailOut, TrialPage

router = APIRouter(tags=["trials"])

SortQ = Annotated[str, Query(max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
                              description="any column of the trials frame")]
OrderQ = Annotated[Literal["asc", "desc"], Query(description="sort order; missing values always last")]
ColumnsQ = Annotated[str | None, Query(max_length=4096, pattern=r"^[A-Za-z0-9_.]+(,[A-Za-z0-9_.]+)*$",
                                       description="comma-separated columns to return (default: all)")]
RunId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-zA-Z_-]+$",
                            description="trial id (e.g. 3fa2b1c0-s1) or MLflow run id")]


def _sort_key(series: pd.Series) -> pd.Series:
    """Numbers sort numerically, everything else as text (params arrive as mixed strings)."""
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.notna().sum() == series.notna().sum():
        return numbers
    return series.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))


def _columns(frame: pd.DataFrame, wanted: str | None) -> list[str]:
    available = [str(c) for c in frame.columns]
    if wanted is None:
        return available
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        invalid_query("columns", wanted, f"comma-separated column names from: {', '.join(available)}")
    return list(dict.fromkeys(names))


def table(data_frame: pd.DataFrame, *, status: list[str] | None, budget: str | None, family: str | None, sort: str,
          order: str, columns: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The trials table as the API shows and exports it: filtered, sorted (missing values last), and the columns
    to show; 422 naming a bad sort column or column list. The frame must not be empty."""
    if sort not in data_frame.columns:
        invalid_query("sort", sort, f"a column of the trials frame: {', '.join(map(str, data_frame.columns))}")
    selected = _columns(data_frame, columns)
    frame = apply_filters(data_frame, status=status, budget=budget, family=family)
    return frame.sort_values(sort, ascending=order == "asc", na_position="last", key=_sort_key, kind="stable"), selected


def _page(data_frame: pd.DataFrame, *, sweep_id: str, version: int, status: list[str] | None,
          budget: str | None, family: str | None, sort: str, order: str, limit: int, offset: int,
          columns: str | None) -> TrialPage:
    if data_frame.empty:
        return TrialPage(sweep_id=sweep_id, data_version=version, total=0, offset=offset, limit=limit,
                         sort=sort, order=order, columns=[], rows=[],
                         message="this sweep has no trials yet")
    frame, selected = table(data_frame, status=status, budget=budget, family=family, sort=sort, order=order,
                            columns=columns)
    page = frame.iloc[offset:offset + limit]
    message = None if len(frame) else f"no trials match ({describe(status, budget, family)})"
    return TrialPage(sweep_id=sweep_id, data_version=version, total=len(frame), offset=offset, limit=limit,
                     sort=sort, order=order, columns=selected,
                     rows=serialize.rows(page, selected), message=message)


@router.get("/sweeps/{sweep}/trials", response_model=TrialPage, responses=NOT_FOUND,
            summary="Trials of a sweep: filter by status/budget/family, sort by any column, page")
def list_trials(data: SweepDep, cache: CacheDep, status: StatusQ = None, budget: BudgetQ = None,
                family: FamilyQ = None, sort: SortQ = C.FINAL_VAL_LOSS, order: OrderQ = "asc",
                limit: LimitQ = 50, offset: OffsetQ = 0, columns: ColumnsQ = None) -> serialize.JSONBytes:
    params = (tuple(status or ()), budget, family, sort, order, limit, offset, columns)
    body = cache.memo(data, "trials", params, lambda: serialize.render(_page(
        data.frame, sweep_id=data.sweep_id, version=data.version, status=None if status is None else list(status),
        budget=budget, family=family, sort=sort, order=order, limit=limit, offset=offset, columns=columns)))
    return serialize.respond(body)


@router.get("/sweeps/{sweep}/trials/{run_id}", response_model=TrialDetailOut, responses=NOT_FOUND,
            summary="One trial: params, final metrics and loss curves")
def get_trial(data: SweepDep, cache: CacheDep, run_id: RunId) -> TrialDetailOut:
    run_id = str(find_trial(data, run_id)[C.RUN_ID])  # a trial id (the short one the page shows) or a run id
    try:
        detail = cache.trial(run_id)
    except NotFound as exc:
        raise HTTPException(status_code=404, detail=f"trial {run_id!r} not found: {exc}") from None
    return serialize.trial_detail(detail)
