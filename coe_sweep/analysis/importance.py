"""Hyperparameter importance per budget, through Optuna's own importance evaluators (not re-implemented).

The finished trials of one budget become an in-memory Optuna study (`optuna.trial.create_trial` +
`study.add_trials`): each varying config field (coe_sweep.analysis.fields.varying_fields) is a parameter
with a distribution read from the values the sweep took (numbers: a float range; text and booleans:
categorical), the objective is the final validation loss (minimised). `optuna.importance.get_param_importances`
then ranks the fields with PED-ANOVA (default) or fANOVA. Optuna is imported here, inside analysis, because
the evaluators are Optuna's; nothing else in this package needs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.analysis.fields import varying_fields

log = logging.getLogger(__name__)

Evaluator = Literal["ped-anova", "fanova"]
EVALUATORS: tuple[str, ...] = ("ped-anova", "fanova")
MIN_TRIALS = 8  # below this the evaluators' rankings are noise (PED-ANOVA's top 10% would be one trial)


@dataclass(frozen=True)
class BudgetImportance:
    budget_label: str
    budget_flops: float | None
    n_trials: int
    evaluator: str
    importances: dict[str, float]  # field -> importance (sums to 1), most important first
    message: str | None = None


def _distribution(values: pd.Series) -> Any:
    import optuna

    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and values.map(lambda v: not isinstance(v, (bool, np.bool_))).all():
        return optuna.distributions.FloatDistribution(float(numbers.min()), float(numbers.max()))
    return optuna.distributions.CategoricalDistribution(sorted(values.map(str).unique()))


def _param(value: Any, distribution: Any) -> Any:
    import optuna

    return str(value) if isinstance(distribution, optuna.distributions.CategoricalDistribution) else float(value)


def _evaluator(name: str, seed: int) -> Any:
    import optuna

    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return optuna.importance.PedAnovaImportanceEvaluator()


def budget_importance(group: pd.DataFrame, fields: list[str], *, label: str, flops: float | None,
                      evaluator: str = "ped-anova", seed: int = 0) -> BudgetImportance:
    """Importance of `fields` for the loss of one budget's finished trials (a message instead when it cannot)."""
    import optuna

    loss = pd.to_numeric(group[C.FINAL_VAL_LOSS], errors="coerce") if C.FINAL_VAL_LOSS in group.columns else None
    rows = group[np.isfinite(loss)] if loss is not None else group.iloc[:0]
    fields = [f for f in fields if f in rows.columns and rows[f].notna().all() and rows[f].map(str).nunique() > 1]

    def answer(message: str | None = None, importances: dict[str, float] | None = None) -> BudgetImportance:
        return BudgetImportance(label, flops, len(rows), evaluator, importances or {}, message)

    if len(rows) < MIN_TRIALS:
        return answer(f"too few finished trials for importance: {len(rows)} at budget {label}, need at least "
                      f"{MIN_TRIALS}")
    if not fields:
        return answer(f"no config field varies among the {len(rows)} finished trials of budget {label}")
    distributions = {f: _distribution(rows[f]) for f in fields}
    trials = [optuna.trial.create_trial(params={f: _param(r[f], distributions[f]) for f in fields},
                                        distributions=distributions, value=float(r[C.FINAL_VAL_LOSS]))
              for r in rows[fields + [C.FINAL_VAL_LOSS]].to_dict(orient="records")]
    study = optuna.create_study(direction="minimize")
    study.add_trials(trials)
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=_evaluator(evaluator, seed))
    except (ValueError, RuntimeError, ZeroDivisionError, ImportError) as exc:  # ImportError: fANOVA without sklearn
        log.info("importance at budget %s failed: %s", label, exc)
        return answer(f"{evaluator} could not rank the fields at budget {label}: {exc}")
    return answer(importances={k: float(v) for k, v in importances.items()})


def param_importances(frame: pd.DataFrame, *, evaluator: str = "ped-anova", seed: int = 0) -> list[BudgetImportance]:
    """One answer per budget of the sweep (budget order), over its finished trials."""
    if evaluator not in EVALUATORS:
        raise ValueError(f"evaluator={evaluator!r} is invalid: expected one of {', '.join(EVALUATORS)}")
    ok = C.ok_rows(frame)
    if ok.empty:
        return []
    fields = varying_fields(frame)
    optuna_logging(quiet=True)
    return [budget_importance(group, fields, label=str(label), flops=None if flops is None or not np.isfinite(flops)
                              else float(flops), evaluator=evaluator, seed=seed)
            for label, flops, group in C.budget_groups(ok)]


def optuna_logging(*, quiet: bool) -> None:
    """Optuna logs every added trial at INFO; a page request should not."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)
