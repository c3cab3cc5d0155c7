"""The researcher views of one sweep (W&B / optuna-dashboard style): varying fields and arms, the trials
table aggregated over seeds, CSV/parquet export, overlaid loss curves (live while trials run),
optimisation history per budget, hyperparameter importance, routing statistics per arm."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from coe_sweep.analysis import columns as C
from coe_sweep.analysis import fields as F
from dashboard import serialize, views
from dashboard.deps import NOT_FOUND, CacheDep, SweepDep, invalid_query
from dashboard.filters import BudgetQ, FamilyQ, StatusQ, apply_filters, describe
from dashboard.routers.trials import ColumnsQ, OrderQ, SortQ, table
from dashboard.schemas import TrialStatus
from dashboard.schemas_views import AggregatePage, CurvesOut, FieldsOut, HistoryOut, ImportanceOut, RoutingOut

router = APIRouter(tags=["views"])

ByQ = Annotated[Literal["trial", "config"], Query(description="trial: one row per trial; config: a config's "
                                                              "seeds collapsed (mean, std, n)")]
MetricQ = Annotated[Literal["val_loss", "train_loss"], Query(description="which curve")]
CurveLimitQ = Annotated[int, Query(ge=1, le=500, description="at most this many trials' curves (best first)")]
ObjectiveQ = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
                                  description="objective name or column, e.g. final_val_loss")]
EvaluatorQ = Annotated[Literal["ped-anova", "fanova"], Query(description="Optuna importance evaluator")]
def _statuses(status: list[TrialStatus] | None) -> list[str] | None:
    return None if status is None else [str(s) for s in status]


MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


@router.get("/sweeps/{sweep}/fields", response_model=FieldsOut, responses=NOT_FOUND,
            summary="Arms, the config fields that vary in this sweep, the trials table's columns")
def get_fields(data: SweepDep, cache: CacheDep) -> serialize.JSONBytes:
    return serialize.respond(cache.memo(data, "fields", (), lambda: serialize.render(
        views.fields_out(data.frame, sweep_id=data.sweep_id, version=data.version))))


@router.get("/sweeps/{sweep}/aggregate", response_model=AggregatePage, responses=NOT_FOUND,
            summary="The trials table with a config's seeds collapsed: mean, std and n of each result")
def get_aggregate(data: SweepDep, cache: CacheDep, status: StatusQ = None, budget: BudgetQ = None,
                  family: FamilyQ = None) -> serialize.JSONBytes:
    def render() -> bytes:
        frame = apply_filters(data.frame, status=_statuses(status), budget=budget, family=family)
        return serialize.render(views.aggregate_page(frame, sweep_id=data.sweep_id, version=data.version,
                                                     message=f"no finished trials match ({describe(_statuses(status), budget, family)})"))
    return serialize.respond(cache.memo(data, "aggregate", (tuple(status or ()), budget, family), render))


def _export(data: SweepDep, cache: CacheDep, kind: str, status: list[str] | None, budget: str | None,
            family: str | None, sort: str, order: str, columns: str | None, by: str) -> Response:
    def render() -> bytes:
        frame = data.frame
        if by == "config":
            frame = F.aggregate_by_config(apply_filters(frame, status=status, budget=budget, family=family))
        elif not frame.empty:
            frame, selected = table(frame, status=status, budget=budget, family=family, sort=sort, order=order,
                                    columns=columns)
            frame = frame[selected]
        return views.export_bytes(frame.reset_index(drop=True), kind)

    body = cache.memo(data, "export", (kind, tuple(status or ()), budget, family, sort, order, columns, by), render)
    name = f"{data.name}-trials{'-by-config' if by == 'config' else ''}.{kind}"
    return Response(content=body, media_type=MEDIA[kind],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/sweeps/{sweep}/trials.csv", responses=NOT_FOUND | {200: {"content": {"text/csv": {}}}},
            response_class=Response, summary="The trials table as CSV (same filters, sort and columns as /trials)")
def trials_csv(data: SweepDep, cache: CacheDep, status: StatusQ = None, budget: BudgetQ = None,
               family: FamilyQ = None, sort: SortQ = C.FINAL_VAL_LOSS, order: OrderQ = "asc",
               columns: ColumnsQ = None, by: ByQ = "trial") -> Response:
    return _export(data, cache, "csv", _statuses(status), budget, family, sort, order, columns, by)


@router.get("/sweeps/{sweep}/trials.parquet",
            responses=NOT_FOUND | {200: {"content": {"application/vnd.apache.parquet": {}}}},
            response_class=Response, summary="The trials table as parquet (same filters, sort and columns as /trials)")
def trials_parquet(data: SweepDep, cache: CacheDep, status: StatusQ = None, budget: BudgetQ = None,
                   family: FamilyQ = None, sort: SortQ = C.FINAL_VAL_LOSS, order: OrderQ = "asc",
                   columns: ColumnsQ = None, by: ByQ = "trial") -> Response:
    return _export(data, cache, "parquet", _statuses(status), budget, family, sort, order, columns, by)


@router.get("/sweeps/{sweep}/curves", response_model=CurvesOut, responses=NOT_FOUND,
            summary="Loss curves of the matching trials (running ones included: the page polls them live)")
def get_curves(data: SweepDep, cache: CacheDep, status: StatusQ = None, budget: BudgetQ = None,
               family: FamilyQ = None, limit: CurveLimitQ = 200) -> serialize.JSONBytes:
    def render() -> bytes:
        frame = apply_filters(data.frame, status=_statuses(status), budget=budget, family=family)
        if not frame.empty and C.FINAL_VAL_LOSS in frame.columns:  # running trials first (live), then best first
            running = (frame[C.STATUS].astype(str) == "running").astype(int) if C.STATUS in frame.columns else 0
            frame = frame.assign(_running=running).sort_values(["_running", C.FINAL_VAL_LOSS], ascending=[False, True],
                                                               na_position="last", kind="stable")
        varying = F.varying_fields(data.frame)
        records = frame.head(limit).to_dict(orient="records")
        curves = [views.curve_out(r, cache.trial(str(r[C.RUN_ID])).curves, varying) for r in records]
        message = None
        if data.frame.empty:
            message = "this sweep has no trials yet"
        elif not curves:
            message = f"no trials match ({describe(_statuses(status), budget, family)})"
        elif len(frame) > limit:
            message = f"showing {limit} of {len(frame)} matching trials (running first, then best loss)"
        return serialize.render(CurvesOut(sweep_id=data.sweep_id, data_version=data.version, total=len(frame),
                                          curves=curves, message=message))
    return serialize.respond(cache.memo(data, "curves", (tuple(status or ()), budget, family, limit), render))


@router.get("/sweeps/{sweep}/history", response_model=HistoryOut, responses=NOT_FOUND,
            summary="Optimisation history per budget: objective against trial order, with the best so far")
def get_history(data: SweepDep, cache: CacheDep, objective: ObjectiveQ = C.FINAL_VAL_LOSS,
                family: FamilyQ = None) -> serialize.JSONBytes:
    known = {name: spec for name, spec in C.OBJECTIVES.items()} | {col: (col, d) for col, d in C.OBJECTIVES.values()}
    if objective not in known:
        invalid_query("objective", objective, f"one of {', '.join(sorted(known))}")
    return serialize.respond(cache.memo(data, "history", (objective, family), lambda: serialize.render(views.history(
        apply_filters(data.frame, family=family), known[objective], sweep_id=data.sweep_id, version=data.version))))


@router.get("/sweeps/{sweep}/importance", response_model=ImportanceOut, responses=NOT_FOUND,
            summary="Hyperparameter importance per budget (Optuna's PED-ANOVA or fANOVA over the finished trials)")
def get_importance(data: SweepDep, cache: CacheDep, evaluator: EvaluatorQ = "ped-anova",
                   family: FamilyQ = None) -> serialize.JSONBytes:
    return serialize.respond(cache.memo(data, "importance", (evaluator, family), lambda: serialize.render(
        views.importance_out(apply_filters(data.frame, family=family), evaluator, sweep_id=data.sweep_id,
                             version=data.version))))


@router.get("/sweeps/{sweep}/routing", response_model=RoutingOut, responses=NOT_FOUND,
            summary="Routing per arm: expert load, router entropy and t->t+1 overlap per layer and iteration "
                    "(mean, sd, n over trials)")
def get_routing(data: SweepDep, cache: CacheDep, budget: BudgetQ = None, family: FamilyQ = None) -> serialize.JSONBytes:
    return serialize.respond(cache.memo(data, "routing", (budget, family), lambda: serialize.render(views.routing_out(
        apply_filters(data.frame, budget=budget, family=family), sweep_id=data.sweep_id, version=data.version,
        filters=describe(None, budget, family)))))
