"""Answers of the researcher views, built from a sweep's trials frame: fields and aggregates, exports,
optimisation history, importance, routing and the one-trial view (response models in schemas_views.py).

Routers (routers/views.py, routers/trialview.py) parse and validate queries, memoise per data version
and call these; nothing here touches HTTP.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.analysis import fields, importance, routing
from coe_sweep.tracking.connection import redact_uri
from dashboard import serialize
from dashboard.schemas_views import (
    AggregatePage,
    ArmRoutingOut,
    CurveOut,
    FieldsOut,
    HistoryBudget,
    HistoryOut,
    HistoryPoint,
    ImportanceBudget,
    ImportanceOut,
    MemoryOut,
    RoutingOut,
    StatSpreadOut,
    SummarySpreadOut,
    TrialRoutingOut,
    TrialViewOut,
)

COLOUR_EXTRA = (C.ARM, C.BUDGET_LABEL, C.FAMILY, C.SEED, C.STATUS)
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"  # `mlflow ui` with no flags
START_TIME = "start_time"
ALLOCATED_AFTER_STEP = "allocated_after_step_bytes"  # the paper's memory figure (coe_sweep.tracking.names)  # the trials frame's run start (epoch ms): trial order


def _text(record: Mapping[str, Any], key: str) -> str | None:
    """A record's value as text, None when missing or NaN."""
    return None if serialize.scalar(record.get(key)) is None else str(record[key])


def arms_of(frame: pd.DataFrame) -> list[str]:
    return [str(a) for a in dict.fromkeys(frame[C.ARM].dropna())] if C.ARM in frame.columns else []


def fields_out(frame: pd.DataFrame, *, sweep_id: str, version: int) -> FieldsOut:
    varying = fields.varying_fields(frame)
    budgets = [label for label, _, _ in C.budget_groups(frame)] if not frame.empty else []
    colour = [c for c in dict.fromkeys([*COLOUR_EXTRA, *varying]) if c in frame.columns]
    return FieldsOut(sweep_id=sweep_id, data_version=version, arms=arms_of(frame), varying=varying,
                     table=fields.table_columns(frame), colour_by=colour, budgets=budgets)


def aggregate_page(frame: pd.DataFrame, *, sweep_id: str, version: int, message: str | None) -> AggregatePage:
    table = fields.aggregate_by_config(frame)
    columns = [str(c) for c in table.columns]
    return AggregatePage(sweep_id=sweep_id, data_version=version, by="config", columns=columns,
                         rows=serialize.rows(table, columns),
                         message=message if table.empty else None)


def export_bytes(frame: pd.DataFrame, kind: str) -> bytes:
    """The frame as CSV text or a parquet file (mixed-type text columns written as strings)."""
    if kind == "csv":
        return frame.to_csv(index=False).encode()
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    buffer = io.BytesIO()
    out.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def tokens_per_step(record: Mapping[str, Any]) -> float | None:
    batch, seq = serialize.finite(record.get("train.batch_size")), serialize.finite(record.get("train.seq_len"))
    return batch * seq if batch is not None and seq is not None else None


def curve_out(record: Mapping[str, Any], curves: Mapping[str, Any], varying: list[str]) -> CurveOut:
    points = {str(k): [[float(s), float(v)] for s, v in pts if serialize.finite(v) is not None]
              for k, pts in curves.items()}
    return CurveOut(run_id=str(record[C.RUN_ID]), trial_id=_text(record, C.TRIAL_ID),
                    arm=_text(record, C.ARM),
                    budget_label=_text(record, C.BUDGET_LABEL),
                    status=_text(record, C.STATUS),
                    tokens_per_step=tokens_per_step(record),
                    fields={f: serialize.scalar(record.get(f)) for f in [*COLOUR_EXTRA, *varying]}, points=points)


def history(frame: pd.DataFrame, objective: tuple[str, str], *, sweep_id: str, version: int) -> HistoryOut:
    """Objective against trial order per budget (start order), with the best value so far."""
    column, direction = objective
    out: list[HistoryBudget] = []
    if not frame.empty:
        ordered = frame.sort_values(START_TIME, kind="stable") if START_TIME in frame.columns else frame
        for label, _, group in C.budget_groups(ordered):
            group = group.sort_values(START_TIME, kind="stable") if START_TIME in group.columns else group
            best: float | None = None
            points = []
            for i, record in enumerate(group.to_dict(orient="records"), start=1):
                ok = str(record.get(C.STATUS)) == C.STATUS_OK
                value = serialize.finite(record.get(column)) if ok else None
                if value is not None and (best is None or (value < best if direction == "min" else value > best)):
                    best = value
                points.append(HistoryPoint(order=i, trial_id=_text(record, C.TRIAL_ID),
                                           run_id=str(record[C.RUN_ID]), arm=_text(record, C.ARM),
                                           status=str(record.get(C.STATUS)), value=value, best=best))
            out.append(HistoryBudget(budget_label=label, points=points))
    return HistoryOut(sweep_id=sweep_id, data_version=version, objective=column, budgets=out,
                      message=None if out else "this sweep has no trials yet")


def importance_out(frame: pd.DataFrame, evaluator: str, *, sweep_id: str, version: int) -> ImportanceOut:
    answers = importance.param_importances(frame, evaluator=evaluator)
    budgets = [ImportanceBudget(budget_label=a.budget_label, budget_flops=a.budget_flops, n_trials=a.n_trials,
                                evaluator=a.evaluator, importances=a.importances, message=a.message) for a in answers]
    return ImportanceOut(sweep_id=sweep_id, data_version=version, evaluator=evaluator, budgets=budgets,
                         message=None if budgets else "no finished trials yet: importance needs finished trials")


def _grid(values: list[list[float | None]]) -> list[list[float | None]]:
    return [[serialize.finite(v) for v in row] for row in values]


def routing_out(frame: pd.DataFrame, *, sweep_id: str, version: int, filters: str) -> RoutingOut:
    arms = []
    for arm in routing.routing_by_arm(frame):
        stats = {name: StatSpreadOut(mean=_grid(s.mean), sd=_grid(s.sd), n=s.n) for name, s in arm.stats.items()}
        summary = {name: SummarySpreadOut(mean=m, sd=sd, n=n) for name, (m, sd, n) in arm.summary.items()}
        arms.append(ArmRoutingOut(arm=arm.arm, n_trials=arm.n_trials, n_layers=arm.n_layers,
                                  n_iterations=arm.n_iterations, stats=stats, load_profile=arm.load_profile,
                                  summary=summary))
    message = None if arms else (
        f"no finished trial ({filters}) logged routing statistics: simulated trials and dense models log none"
        if not frame.empty else "this sweep has no trials yet")
    return RoutingOut(sweep_id=sweep_id, data_version=version, arms=arms, message=message)


def mlflow_link(tracking_uri: str, experiment_id: str | None, run_id: str) -> tuple[str | None, str | None]:
    """(URL of the run in the MLflow UI, a hint for local stores). Credentials never enter the URL."""
    parts = urlsplit(tracking_uri)
    fragment = f"/experiments/{experiment_id}/runs/{run_id}" if experiment_id else None
    if parts.scheme in ("http", "https") and fragment:
        base = urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "",
                           parts.path.rstrip("/"), "", ""))
        return f"{base}/#{fragment}", None
    hint = f".venv/bin/mlflow ui --backend-store-uri {redact_uri(tracking_uri)} (then this link works)"
    return (f"{MLFLOW_UI_DEFAULT}/#{fragment}" if fragment else None), hint


def trial_view(record: Mapping[str, Any], detail: Any, *, sweep_name: str, tracking_uri: str,
               experiment_id: str | None) -> TrialViewOut:
    """One trial: identity from its frame row, config/finals/curves from its run, memory, routing, MLflow link."""
    finals = {str(k): serialize.finite(v) for k, v in dict(detail.finals).items() if not str(k).startswith(routing.PREFIX)}
    per_step = tokens_per_step(record)
    curves: dict[str, list[list[float | None]]] = {
        str(k): [[float(s), float(s) * per_step if per_step else None, float(v)] for s, v in pts
                 if serialize.finite(v) is not None] for k, pts in dict(detail.curves).items()}
    trial_routing = routing.trial_routing(dict(detail.finals))
    peak, estimate = serialize.finite(record.get(C.PEAK_MEMORY_BYTES)), serialize.finite(record.get(C.ESTIMATED_MEMORY_BYTES))
    url, hint = mlflow_link(tracking_uri, experiment_id, str(record[C.RUN_ID]))
    config = {str(k): serialize.scalar(v) for k, v in dict(detail.params).items()}
    seed = record.get(C.SEED)
    return TrialViewOut(
        sweep_id=str(detail.sweep_id or ""), sweep_name=sweep_name, run_id=str(record[C.RUN_ID]),
        trial_id=_text(record, C.TRIAL_ID),
        arm=_text(record, C.ARM), seed=None if seed is None or pd.isna(seed) else int(seed),
        config_hash=_text(record, C.CONFIG_HASH),
        budget_label=_text(record, C.BUDGET_LABEL),
        budget_flops=serialize.finite(record.get(C.BUDGET_FLOPS)), status=detail.status, reason=detail.reason,
        simulated=bool(record.get(C.SIMULATED, False)), config=config, finals=finals, tokens_per_step=per_step,
        curves=curves, memory=MemoryOut(peak_measured_bytes=peak, estimated_bytes=estimate,
                                        allocated_after_step_bytes=serialize.finite(record.get(ALLOCATED_AFTER_STEP)),
                                        ratio=peak / estimate if peak is not None and estimate else None),
        routing=None if trial_routing.empty else TrialRoutingOut(
            n_layers=trial_routing.n_layers, n_iterations=trial_routing.n_iterations,
            grids={k: _grid(v) for k, v in trial_routing.grids.items()}, loads=trial_routing.loads,
            summary=trial_routing.summary),
        mlflow_url=url, mlflow_hint=hint)
