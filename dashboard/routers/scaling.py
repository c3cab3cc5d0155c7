"""Scaling fits across budgets and the predicted optimum at a budget: Approach 2 (power laws of the IsoFLOP
optimum, in the chosen x), and every method side by side in active params (Approach 2, Approach 3, the
CoE/MoE law) with its leave-future-out audit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from coe_sweep.analysis.methods import LawSet
from coe_sweep.analysis.scaling import ScalingFit
from coe_sweep.units import BYTES_PATTERN
from dashboard import answers, serialize
from dashboard.cache import SweepCache, SweepData
from dashboard.deps import NOT_FOUND, CacheDep, SweepDep, max_memory_query
from dashboard.filters import FamilyQ
from dashboard.routers.frontier import XQ, cached_profiles
from dashboard.schemas import OptimalOut, ScalingOut

router = APIRouter(tags=["scaling"])

FlopsQ = Annotated[float, Query(gt=0, le=1e40, allow_inf_nan=False, description="training budget in FLOPs, e.g. 1e15")]
MaxMemoryQ = Annotated[str | None, Query(max_length=32, pattern=BYTES_PATTERN,
                                         description="memory cap: bytes or 2GB / 512MiB")]


def cached_fit(cache: SweepCache, data: SweepData, x: str, family: str | None) -> ScalingFit | str:
    return cache.memo(data, "scaling_fit", (x, family),
                      lambda: answers.fit(cached_profiles(cache, data, x, family)))


def cached_laws(cache: SweepCache, data: SweepData, family: str | None) -> LawSet | str:
    """Every method, fitted once per (sweep, data version, family); x-independent (N = active params)."""
    return cache.memo(data, "laws", (family,), lambda: answers.laws(
        data.frame, family, cached_profiles(cache, data, "params_active", family),
        cached_fit(cache, data, "params_active", family)))


@router.get("/sweeps/{sweep}/scaling", response_model=ScalingOut, responses=NOT_FOUND,
            summary="Power laws of the optimal x, tokens and loss against compute, and every method's optimum per "
                    "budget (Approach 2, Approach 3, the CoE/MoE law) with its leave-future-out audit")
def get_scaling(data: SweepDep, cache: CacheDep, x: XQ = "params_active", family: FamilyQ = None) -> serialize.JSONBytes:
    def render() -> bytes:
        profiles = cached_profiles(cache, data, x, family)
        out = answers.scaling(data.frame, profiles, cached_fit(cache, data, x, family), sweep_id=data.sweep_id,
                              version=data.version, x=x, family=family)
        return serialize.render(answers.add_methods(out, cached_laws(cache, data, family)))

    return serialize.respond(cache.memo(data, "scaling", (x, family), render))


@router.get("/sweeps/{sweep}/optimal", response_model=OptimalOut, responses=NOT_FOUND,
            summary="Predicted compute-optimal x/tokens/loss at `flops` by every method (interval, reach, audit) "
                    "and the nearest trainable config")
def get_optimal(data: SweepDep, cache: CacheDep, flops: FlopsQ, max_memory: MaxMemoryQ = None,
                x: XQ = "params_active", family: FamilyQ = None) -> serialize.JSONBytes:
    max_memory_bytes = max_memory_query(max_memory)

    def render() -> bytes:
        return serialize.render(answers.optimal(
            data.frame, cached_fit(cache, data, x, family), sweep_id=data.sweep_id, version=data.version,
            x=x, family=family, flops=flops, max_memory_bytes=max_memory_bytes,
            law_set=cached_laws(cache, data, family), profiles=cached_profiles(cache, data, x, family)))

    return serialize.respond(cache.memo(data, "optimal", (x, family, flops, max_memory_bytes), render))
