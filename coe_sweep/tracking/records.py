"""What the tracking package hands out: frozen records of sweeps and trials, and its exceptions.

Plain dataclasses (no mlflow types leak out of coe_sweep.tracking). Times are epoch milliseconds.
"""

from __future__ import annotations

import logging
import math
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from coe_sweep.tracking.names import RESULT_TO_METRIC, Scalar
from coe_sweep.trial import RunResult, TrialStatus, parse_status

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The tracking store refused an operation for a reason retrying cannot fix."""


class TrackingUnavailable(TrackingError):
    """The tracking store cannot be reached (server down, unwritable sqlite directory, ...)."""


class NotFound(LookupError):
    """Base of the read side's 'no such thing' errors (the dashboard maps it to HTTP 404)."""


class SweepNotFound(NotFound):
    """No sweep parent run matches the given id or name."""


class TrialNotFound(NotFound):
    """No trial child run has the given id."""


@dataclass(frozen=True)
class TrialRecord:
    """A trial that reached an end (FINISHED or FAILED with a result), as the driver needs it on resume."""

    run_id: str
    config_hash: str
    seed: int
    arm: str | None
    status: str  # a coe_sweep.trial.TrialStatus result value
    reason: str | None
    run_status: str  # MLflow: FINISHED | FAILED | KILLED (pruned)
    metrics: dict[str, float]
    params: dict[str, Scalar]
    budget_label: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def result(self) -> RunResult:
        """The RunResult its tags and final metrics hold (curves are not read back: they stay in MLflow)."""
        try:
            status = parse_status(self.status)
        except ValueError:
            status = TrialStatus.FAILED
        values: dict[str, Any] = {}
        hints = typing.get_type_hints(RunResult)
        bad = []
        for attr, metric in RESULT_TO_METRIC.items():
            value = self.metrics.get(metric)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                bad.append(f"{metric}={value!r}")  # what the trial could not measure: dropped, not fatal
                continue
            values[attr] = int(value) if "int" in str(hints[attr]) else float(value)
        if bad:
            log.warning("trial %s: MLflow metric(s) %s are not finite numbers; read without them",
                        self.config_hash, ", ".join(bad[:5]))
        return RunResult(status=status if status.is_result else TrialStatus.FAILED, reason=self.reason, **values)


@dataclass(frozen=True)
class SweepSummary:
    id: str  # parent run id
    name: str
    experiment_id: str
    status: str  # MLflow status of the parent run: RUNNING | FINISHED | FAILED | KILLED
    spec_hash: str | None
    simulated: bool
    n_trials: int
    counts: dict[str, int]  # trial status (ok, diverged, oom, failed, running, ...) -> count
    start_time: int | None
    end_time: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrialDetail:
    run_id: str
    sweep_id: str | None
    config_hash: str | None
    status: str
    reason: str | None
    run_status: str
    params: dict[str, Scalar]
    finals: dict[str, float]  # every metric except the step curves
    curves: dict[str, list[tuple[int, float]]]  # train_loss / val_loss by step
    tags: dict[str, str] = field(default_factory=dict)  # coe_sweep.* tags
    start_time: int | None = None
    end_time: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
