"""Arm comparisons: every arm against a baseline arm with intervals over seeds, at equal FLOPs, memory and
wall time, and compute multipliers (coe_sweep.analysis.compare)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from dashboard import answers, serialize
from dashboard.cache import SweepCache, SweepData
from dashboard.deps import NOT_FOUND, CacheDep, SweepDep, invalid_query
from dashboard.schemas import CompareOut

router = APIRouter(tags=["compare"])

BaselineQ = Annotated[str | None, Query(min_length=1, max_length=200,
                                        description="arm to compare against (default: the spec's analysis.baseline, "
                                                    "else `moe`, else the first arm)")]


def spec_default(cache: SweepCache, data: SweepData) -> str | None:
    """The sweep's `analysis.baseline` from its logged spec, read once per data version."""
    return cache.memo(data, "spec-baseline", (), lambda: answers.stored_spec_baseline(cache.store, data.sweep_id))


@router.get("/sweeps/{sweep}/compare", response_model=CompareOut, responses=NOT_FOUND,
            summary="Every arm vs the baseline: paired differences with intervals and verdicts per budget, "
                    "at equal memory and wall time, and compute multipliers")
def get_compare(data: SweepDep, cache: CacheDep, baseline: BaselineQ = None) -> serialize.JSONBytes:
    default = spec_default(cache, data) if baseline is None else None

    def render() -> bytes:
        return serialize.render(answers.compare(data.frame, sweep_id=data.sweep_id, version=data.version,
                                                baseline=baseline, spec_default=default))

    try:
        return serialize.respond(cache.memo(data, "compare", (baseline, default), render))
    except ValueError as exc:  # an unknown baseline: not memoised, answered as the documented 422
        invalid_query("baseline", baseline, message=str(exc))
