"""Serialisation, in one place: tracking records, frame rows and analysis objects -> response models.

Rules: NaN/inf become None (never invalid JSON), numpy scalars become Python, epoch-ms times become
ISO 8601 strings, `model.<field>` params are shown as `<field>` in point configs. Responses are
rendered to JSON bytes here (`render`) so that routers can memoise the bytes per data version.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Response
from pydantic import BaseModel

from coe_sweep.analysis import columns as C
from coe_sweep.analysis import sanity
from dashboard.schemas import (
    ArmFrontierOut,
    ArmResultOut,
    BudgetCompareOut,
    BudgetOut,
    CapCompareOut,
    CellOut,
    FitFlagOut,
    FrontierBudget,
    FrontierPoint,
    MeanCIOut,
    MultiplierOut,
    PairedDifferenceOut,
    ParabolaFit,
    Scalar,
    SweepOut,
    TrialDetailOut,
)

# Shown on hover and in tables as "the config" of a trial.
CONFIG_COLUMNS = (C.FAMILY, C.ITERATIONS, C.TOP_K, C.N_EXPERTS, "model.n_shared", C.N_LAYERS, C.D_MODEL,
                  C.D_EXPERT, "model.router_mode", C.BUDGET_LABEL, C.PARAMS_ACTIVE, C.PARAMS_TOTAL, C.TOKENS,
                  C.PEAK_MEMORY_BYTES, C.FINAL_VAL_LOSS)


class JSONBytes(Response):
    media_type = "application/json"


def render(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def respond(body: bytes) -> JSONBytes:
    return JSONBytes(content=body)


def scalar(value: Any) -> Scalar:
    """A JSON scalar: numpy -> python, NaN/inf/NaT -> None, timestamps -> ISO, others -> str."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def finite(value: Any) -> float | None:
    """A finite float or None (also for unparseable strings)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def finite_pair(pair: Iterable[Any] | None) -> list[float] | None:
    if pair is None:
        return None
    values = [finite(v) for v in pair]
    return None if any(v is None for v in values) else values  # type: ignore[return-value]


def iso_ms(ms: Any) -> str | None:
    value = finite(ms)
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value / 1000.0, tz=dt.timezone.utc).isoformat()


def config_of(record: Mapping[str, Any]) -> dict[str, Scalar]:
    """The hover config of one trial record: family and architecture knobs, `model.` stripped."""
    return {key.removeprefix("model."): scalar(record[key]) for key in CONFIG_COLUMNS if key in record}


def rows(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Scalar]]:
    records = frame[columns].to_dict(orient="records")
    return [{k: scalar(v) for k, v in record.items()} for record in records]


# --- sweeps -------------------------------------------------------------------------------------
def sweep_out(summary: Any) -> SweepOut:
    counts = {str(k): int(v) for k, v in dict(getattr(summary, "counts", {}) or {}).items()}
    return SweepOut(id=str(summary.id), name=str(summary.name), status=str(summary.status), counts=counts,
                    n_trials=int(getattr(summary, "n_trials", sum(counts.values()))),
                    spec_hash=getattr(summary, "spec_hash", None), simulated=bool(getattr(summary, "simulated", False)),
                    start_time=iso_ms(getattr(summary, "start_time", None)),
                    end_time=iso_ms(getattr(summary, "end_time", None)))


def budgets_of(frame: pd.DataFrame) -> list[BudgetOut]:
    if frame.empty or (C.BUDGET_LABEL not in frame.columns and C.BUDGET_FLOPS not in frame.columns):
        return []
    ok = C.ok_rows(frame)
    ok_ids = set(ok[C.RUN_ID]) if C.RUN_ID in ok.columns else set()
    out = []
    for label, flops, group in C.budget_groups(frame):
        n_ok = int(group[C.RUN_ID].isin(ok_ids).sum()) if C.RUN_ID in group.columns else len(group)
        out.append(BudgetOut(budget_label=label, budget_flops=finite(flops), n_trials=len(group), n_ok=n_ok))
    return out


# --- trials -------------------------------------------------------------------------------------
def trial_detail(detail: Any) -> TrialDetailOut:
    params = {str(k): scalar(v) for k, v in dict(detail.params).items()}
    finals = {str(k): finite(v) for k, v in dict(detail.finals).items()}
    curves = {str(name): [[float(step), float(value)] for step, value in points
                          if finite(value) is not None and finite(step) is not None]
              for name, points in dict(detail.curves).items()}
    return TrialDetailOut(run_id=str(detail.run_id), sweep_id=str(detail.sweep_id or ""),
                          status=detail.status, reason=detail.reason, params=params, finals=finals,
                          tags={str(k): str(v) for k, v in dict(getattr(detail, "tags", {}) or {}).items()},
                          curves=curves)


# --- frontier -----------------------------------------------------------------------------------
def flag(f: sanity.FitFlag) -> FitFlagOut:
    return FitFlagOut(code=f.code.value, fit=f.fit, level=f.level, text=f.text, blocking=f.blocking)


def flags(items: Iterable[sanity.FitFlag]) -> list[FitFlagOut]:
    return [flag(f) for f in items]


def frontier_budget(profile: Any) -> FrontierBudget:
    points = []
    for point in profile.points:
        x, loss = finite(point.get("x")), finite(point.get("loss"))
        if x is None or loss is None:
            continue
        points.append(FrontierPoint(run_id=None if point.get(C.RUN_ID) is None else str(point[C.RUN_ID]),
                                    trial_id=None if point.get(C.TRIAL_ID) is None else str(point[C.TRIAL_ID]),
                                    x=x, loss=loss, family=scalar(point.get(C.FAMILY)) and str(point[C.FAMILY]),
                                    config=config_of(point)))
    level_flags = sanity.profile_flags(profile)
    fit = None
    if profile.coef is not None and all(finite(c) is not None for c in profile.coef):
        curve = [(finite(x), finite(y)) for x, y in zip(profile.curve_x, profile.curve_loss, strict=False)]
        curve = [(x, y) for x, y in curve if x is not None and y is not None]
        fit = ParabolaFit(coef=[float(c) for c in profile.coef], convex=bool(profile.convex),
                          x_opt=finite(profile.x_opt), loss_opt=finite(profile.loss_opt),
                          tokens_opt=finite(profile.tokens_opt), x_opt_ci=finite_pair(profile.x_opt_ci),
                          loss_opt_ci=finite_pair(profile.loss_opt_ci), ci=float(profile.ci),
                          boot_convex_fraction=finite(profile.boot_convex_fraction),
                          curve_x=[x for x, _ in curve], curve_loss=[y for _, y in curve])
    return FrontierBudget(budget_label=str(profile.budget_label), budget_flops=finite(profile.budget_flops),
                          n_points=int(profile.n_points), best_run_id=profile.best_run_id,
                          best_x=finite(profile.best_x), best_loss=finite(profile.best_loss), points=points,
                          fit=fit, warnings=[str(getattr(w, "value", w)) for w in profile.warnings],
                          notes=[str(n) for n in profile.notes], flags=flags(level_flags),
                          flagged=sanity.is_flagged(level_flags))


# --- arm comparisons ----------------------------------------------------------------------------
def _cell(cell: Any) -> CellOut:
    return CellOut(arm=cell.arm, config=cell.config, budget_label=cell.budget_label, budget_flops=finite(cell.budget_flops),
                   seeds=list(cell.seeds), losses=[float(v) for v in cell.losses],
                   peak_memory_bytes=finite(cell.peak_memory_bytes), wall_s=finite(cell.wall_s),
                   train_flops=finite(cell.train_flops), describe={k: scalar(v) for k, v in cell.describe.items()})


def _paired(diff: Any) -> PairedDifferenceOut | None:
    if diff is None:
        return None
    return PairedDifferenceOut(seeds=list(diff.seeds), n=diff.n, mean=float(diff.mean), sd=finite(diff.sd),
                               ci=finite_pair(diff.ci), p_value=finite(diff.p_value), level=float(diff.level),
                               detectable=finite(diff.detectable), seeds_needed=diff.seeds_needed,
                               verdict=diff.verdict, text=diff.text)


def arm_result(result: Any) -> ArmResultOut:
    s = result.summary
    return ArmResultOut(arm=result.arm, cell=_cell(result.cell), n_configs=result.n_configs,
                        summary=MeanCIOut(n=s.n, mean=float(s.mean), sd=finite(s.sd), ci=finite_pair(s.ci)),
                        diff=_paired(result.diff), peak_memory_ratio=finite(result.peak_memory_ratio),
                        wall_s_ratio=finite(result.wall_s_ratio), train_flops_ratio=finite(result.train_flops_ratio),
                        notes=list(result.notes))


def budget_compare(budget: Any) -> BudgetCompareOut:
    return BudgetCompareOut(budget_label=budget.budget_label, budget_flops=finite(budget.budget_flops),
                            arms=[arm_result(a) for a in budget.arms], notes=list(budget.notes))


def cap_compare(cap: Any) -> CapCompareOut:
    return CapCompareOut(resource=cap.resource, cap=float(cap.cap), arms=[arm_result(a) for a in cap.arms],
                         missing=list(cap.missing))


def arm_frontier(frontier: Any) -> ArmFrontierOut:
    curve_flops, curve_loss = frontier.curve()
    return ArmFrontierOut(arm=frontier.arm, budgets_flops=list(frontier.budgets_flops), losses=list(frontier.losses),
                          seeds=list(frontier.seeds), E=finite(frontier.E), k=finite(frontier.k),
                          beta=finite(frontier.beta), c_ref=float(frontier.c_ref), form=frontier.form,
                          notes=list(frontier.notes), curve_flops=curve_flops, curve_loss=curve_loss)


def multiplier(m: Any) -> MultiplierOut:
    ci = None if m.ci is None else [finite(m.ci[0]), finite(m.ci[1])]
    return MultiplierOut(arm=m.arm, baseline=m.baseline, flops=float(m.flops), loss=float(m.loss),
                         baseline_flops=finite(m.baseline_flops), multiplier=finite(m.multiplier), ci=ci,
                         level=float(m.level), extrapolated=bool(m.extrapolated), n_boot=int(m.n_boot), text=m.text,
                         warnings=list(m.warnings))
