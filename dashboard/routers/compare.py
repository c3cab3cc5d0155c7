"""CoE vs MoE at each budget: best of each family side by side with loss, memory and FLOPs differences."""

from __future__ import annotations

from fastapi import APIRouter

from dashboard import answers, serialize
from dashboard.deps import NOT_FOUND, CacheDep, SweepDep
from dashboard.filters import BudgetQ, apply_filters
from dashboard.schemas import CompareOut

router = APIRouter(tags=["compare"])


@router.get("/sweeps/{sweep}/compare", response_model=CompareOut, responses=NOT_FOUND,
            summary="Best CoE vs best MoE per budget (iso training FLOPs), with differences")
def get_compare(data: SweepDep, cache: CacheDep, budget: BudgetQ = None) -> serialize.JSONBytes:
    if budget is not None and not data.frame.empty:
        apply_filters(data.frame, budget=budget)  # validate (422) before memoising

    def render() -> bytes:
        filtered = apply_filters(data.frame, budget=budget)
        return serialize.render(answers.compare(data.frame, filtered, sweep_id=data.sweep_id, version=data.version))

    return serialize.respond(cache.memo(data, "compare", (budget,), render))
