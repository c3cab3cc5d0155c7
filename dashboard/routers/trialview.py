"""One trial, as its page shows it: identity, every config field, curves against steps and tokens,
memory measured vs estimated, routing grids, and the link to its MLflow run. Addressed by its short
trial id (`<config hash[:8]>-s<seed>`, the MLflow run name) or by its run id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from coe_sweep.analysis import columns as C
from coe_sweep.tracking import NotFound
from dashboard import serialize, views
from dashboard.cache import SweepData
from dashboard.deps import NOT_FOUND, CacheDep, SettingsDep, SweepDep
from dashboard.schemas_views import TrialViewOut

router = APIRouter(tags=["trials"])

TrialKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-zA-Z_-]+$",
                               description="trial id (e.g. 3fa2b1c0-s1) or MLflow run id")]


def find_trial(data: SweepData, key: str) -> dict[str, object]:
    """The frame row whose trial_id or run_id is `key` (the newest when a trial id repeats); 404 naming it."""
    frame = data.frame
    for column in (C.TRIAL_ID, C.RUN_ID):
        if not frame.empty and column in frame.columns:
            match = frame[frame[column].astype(str) == key]
            if len(match):
                return match.iloc[-1].to_dict()
    raise HTTPException(status_code=404, detail=f"trial {key!r} not found in sweep {data.name!r}: expected a "
                                                f"trial id (config hash[:8]-s<seed>) or run id of its trials")


@router.get("/sweeps/{sweep}/trials/{trial}/view", response_model=TrialViewOut, responses=NOT_FOUND,
            summary="One trial for its page: identity, config, curves vs steps and tokens, memory, routing, MLflow link")
def get_trial_view(data: SweepDep, cache: CacheDep, settings: SettingsDep, trial: TrialKey) -> serialize.JSONBytes:
    record = find_trial(data, trial)
    run_id = str(record[C.RUN_ID])
    summary = cache.resolve(data.sweep_id)

    def render() -> bytes:
        try:
            detail = cache.trial(run_id)
        except NotFound as exc:
            raise HTTPException(status_code=404, detail=f"trial {trial!r} not found: {exc}") from None
        return serialize.render(views.trial_view(record, detail, sweep_name=data.name, tracking_uri=settings.tracking_uri,
                                                 experiment_id=getattr(summary, "experiment_id", None)))
    return serialize.respond(cache.memo(data, "trial-view", run_id, render))
