"""Pareto set of a sweep's finished trials over 2-3 chosen objectives, with filters."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query

from coe_sweep.analysis import columns as C
from coe_sweep.units import BYTES_PATTERN
from dashboard import answers, serialize
from dashboard.deps import NOT_FOUND, CacheDep, SweepDep, invalid_query, max_memory_query
from dashboard.filters import BudgetQ, FamilyQ, apply_filters
from dashboard.schemas import ParetoOut

router = APIRouter(tags=["pareto"])

_NAME = "(" + "|".join(re.escape(n) for n in C.accepted_objectives()) + ")(:(min|max))?"
ObjectivesQ = Annotated[str, Query(
    max_length=512, pattern=f"^{_NAME}(,{_NAME}){{1,2}}$",
    description="2-3 distinct comma-separated NAME[:min|max]; names: " + ", ".join(C.accepted_objectives()))]
MaxMemoryQ = Annotated[str | None, Query(max_length=32, pattern=BYTES_PATTERN,
                                         description="keep trials with peak memory <= this (2GB, 5e8)")]
DominatedQ = Annotated[bool, Query(description="also return the dominated trials (for plots)")]
PooledQ = Annotated[bool, Query(description="one front over every budget (default: one front per budget level)")]


@router.get("/sweeps/{sweep}/pareto", response_model=ParetoOut, responses=NOT_FOUND,
            summary="Non-dominated finished trials for the chosen objectives")
def get_pareto(data: SweepDep, cache: CacheDep,
               objectives: ObjectivesQ = "final_val_loss:min,peak_memory_bytes:min", budget: BudgetQ = None,
               family: FamilyQ = None, max_memory: MaxMemoryQ = None,
               include_dominated: DominatedQ = False, pooled: PooledQ = False) -> serialize.JSONBytes:
    try:
        resolved = answers.parse_objectives(objectives)
    except ValueError as exc:
        invalid_query("objectives", objectives, message=str(exc))
    max_memory_bytes = max_memory_query(max_memory)

    def render() -> bytes:
        filtered = apply_filters(data.frame, budget=budget, family=family)
        if max_memory_bytes is not None and not filtered.empty:
            filtered = filtered[C.numeric(filtered, C.PEAK_MEMORY_BYTES) <= max_memory_bytes]
        filters = {"budget": budget, "family": family, "max_memory_bytes": max_memory_bytes}
        return serialize.render(answers.pareto(data.frame, filtered, resolved, sweep_id=data.sweep_id,
                                               version=data.version, filters=filters,
                                               include_dominated=include_dominated, pooled=pooled))

    key = (tuple(resolved), budget, family, max_memory_bytes, include_dominated, pooled)
    if budget is not None and not data.frame.empty:
        apply_filters(data.frame, budget=budget)  # validate outside the memo: a 422 is not cached
    return serialize.respond(cache.memo(data, "pareto", key, render))

