"""IsoFLOP frontier: per budget, loss against x with the fitted parabola and its vertex interval."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from coe_sweep.analysis.isoflop import IsoFlopProfile
from dashboard import answers, serialize
from dashboard.cache import SweepCache, SweepData
from dashboard.deps import NOT_FOUND, CacheDep, SweepDep
from dashboard.filters import FamilyQ
from dashboard.schemas import FrontierOut, XAxis

router = APIRouter(tags=["frontier"])

XQ = Annotated[XAxis, Query(description="x axis: params_active | params_total | tokens | iterations")]


def cached_profiles(cache: SweepCache, data: SweepData, x: str, family: str | None) -> list[IsoFlopProfile]:
    """IsoFLOP profiles, fitted once per (sweep, data version, x, family); shared with scaling."""
    return cache.memo(data, "profiles", (x, family), lambda: answers.profiles(data.frame, x, family))


@router.get("/sweeps/{sweep}/frontier", response_model=FrontierOut, responses=NOT_FOUND,
            summary="IsoFLOP profiles per budget: points, fitted parabola in log x, vertex and interval")
def get_frontier(data: SweepDep, cache: CacheDep, x: XQ = "params_active",
                 family: FamilyQ = None) -> serialize.JSONBytes:
    def render() -> bytes:
        profiles = cached_profiles(cache, data, x, family)
        return serialize.render(answers.frontier(data.frame, profiles, sweep_id=data.sweep_id,
                                                 version=data.version, x=x, family=family))

    return serialize.respond(cache.memo(data, "frontier", (x, family), render))
