"""The driver-side Tune callback: every trial's start and end written to the sweep store, MLflow and progress.

On a trial's start: journal line, MLflow child run (params: the flattened run spec + budget), progress.
On each intermediate report: the step metrics to MLflow. On its end: the result record (BEFORE MLflow, so a
relaunch re-logs what MLflow missed), the journal's finish line, the MLflow result, the ledger, progress and
one log line. A trial Tune stopped without a final report was pruned by ASHA, or cut short by the sweep's
own stop (then it is marked interrupted and run again by the relaunch). Tracking errors never kill a sweep.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ray import tune

from coe_sweep.sweep.ledger import Ledger, StopPolicy, TrialKey
from coe_sweep.sweep.logged import trial_params, trial_tags
from coe_sweep.sweep.progress import SweepProgress
from coe_sweep.sweep.store import SweepStore
from coe_sweep.tracking import SweepTracker
from coe_sweep.tracking.names import REJECTED_PREFIX
from coe_sweep.trial import (
    PRIMARY_OBJECTIVE,
    FinishedTrial,
    RunResult,
    TrialIdentity,
    TrialStatus,
    objective_value,
    trial_id_of,
)
from runners.trainable import RUN_RESULT_KEY, trial_identity

log = logging.getLogger(__name__)

TRIAL_RETRIES = 1  # Tune re-runs a trial whose worker died (FailureConfig); trial exceptions are results
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)  # the sweep directory stopped taking writes


class DriverCallback(tune.Callback):
    """Sweep store + MLflow + ledger + progress, from the driver (see the module docstring); never raises."""

    def __init__(self, *, ledger: Ledger, store: SweepStore, tracker: SweepTracker, progress: SweepProgress,
                 stop: StopPolicy, simulated: bool) -> None:
        self._ledger, self._store, self._tracker = ledger, store, tracker
        self._progress, self._stop, self._simulated = progress, stop, simulated
        self._run_ids: dict[TrialKey, str] = {}
        self._logged_rejected: dict[str, int] = {}
        self._logging: dict[TrialKey, RunResult] = {}  # finished, their MLflow record being written right now
        self._started_s: dict[TrialKey, float] = {}  # trials holding a slot now, since when
        self.busy_slot_s = 0.0  # slot-seconds trials held, start to end (the sweep's own efficiency)
        self.trials_span_s = 0.0  # from the first trial's start to the last one's end, this launch
        self._first_start_s: float | None = None

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        # Tune pickles its Tuner, run_config included, for its own restore; coe-sweep never uses that
        # (resume reads the result records and MLflow), and this callback's tracker and lock exist only here.
        return _driver_only, ()

    def _safe(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:  # tracking must never kill the sweep; the result record lets resume re-log
            log.exception("tracking: %s failed (the result record keeps the trial for a relaunch)", what)
            return None

    def log_rejected(self, label: str) -> None:
        """Rejected candidates have no child run: their count per budget goes on the parent run for `status`."""
        n = len(self._ledger.rejected.get(label, {}))
        self._progress.budget(label).rejected = n
        if self._logged_rejected.get(label) == n:
            return
        self._logged_rejected[label] = n
        self._safe("log the rejected count", self._tracker.log_sweep_metrics, {f"{REJECTED_PREFIX}{label}": n})

    def storage_failed(self, what: str, exc: OSError) -> None:
        self._stop.storage_failed(str(self._store.root), what, exc)

    def _release_slot(self, key: TrialKey) -> None:
        started, now = self._started_s.pop(key, None), time.monotonic()
        if started is not None:
            self.busy_slot_s += now - started
        if self._first_start_s is not None:
            self.trials_span_s = now - self._first_start_s

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        identity = trial_identity(trial.config)
        self._started_s[identity.key] = time.monotonic()
        if self._first_start_s is None:
            self._first_start_s = self._started_s[identity.key]
        try:
            self._store.journal("start", identity)
        except OSError as exc:
            self.storage_failed("trial journal", exc)
        self._progress.budget(identity.budget_label).running += 1
        self.log_rejected(identity.budget_label)
        plan = self._ledger.plan_of(identity.key)
        if plan is not None and identity.key not in self._run_ids:
            run_id = self._safe("start_trial", functools.partial(
                self._tracker.start_trial, identity.config_hash, trial_params(plan, identity),
                trial_tags(plan, identity, self._simulated), seed=identity.seed))
            if run_id:
                self._run_ids[identity.key] = run_id

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        run_id = self._run_ids.get(trial_identity(trial.config).key)
        if run_id and RUN_RESULT_KEY not in result and "val_loss" in result:
            metrics = {k: result[k] for k in ("val_loss", "train_loss")
                       if isinstance(result.get(k), float) and math.isfinite(result[k])}
            self._safe("log_progress", self._tracker.log_progress, run_id, int(result.get("step", 0)), metrics)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        identity, last = trial_identity(trial.config), trial.last_result or {}
        if RUN_RESULT_KEY in last:
            self._finish(identity, RunResult.from_dict(last[RUN_RESULT_KEY]))
            return
        step, val = last.get("step"), last.get("val_loss")
        if self._stop.stopped_reason:
            self._interrupted(identity, f"interrupted at step {step}: the sweep was {self._stop.stopped_reason}")
            return
        result = RunResult(status=TrialStatus.PRUNED, reason=f"ASHA stopped it at step {step} (val_loss {val})",
                           steps=int(step or 0), tokens=int(last.get("tokens") or 0),
                           val_curve=[(int(step), float(val))] if step is not None and val is not None else [],
                           simulated=self._simulated)
        plan = self._ledger.plan_of(identity.key)
        if plan is not None:
            result.train_flops_per_token = float(plan.train_flops_per_token)
            result.flops = result.train_flops_per_token * result.tokens
            result.params_total, result.params_active = int(plan.params_total), int(plan.params_active)
        self._finish(identity, result)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        error = trial.get_error() if hasattr(trial, "get_error") else None
        text = str(error or "the trial's worker died").strip().splitlines()
        reason = f"error after {TRIAL_RETRIES} retr{'y' if TRIAL_RETRIES == 1 else 'ies'}: " + (
            text[-1] if text else "unknown")
        self._finish(trial_identity(trial.config),
                     RunResult(status=TrialStatus.FAILED, reason=reason[:2000], simulated=self._simulated))

    def _interrupted(self, identity: TrialIdentity, reason: str) -> None:
        """Cut short by the sweep's own stop: no result record, so the relaunch runs it again."""
        self._release_slot(identity.key)
        self._ledger.interrupt(identity.key, identity.budget_label)
        bp = self._progress.budget(identity.budget_label)
        bp.running = max(0, bp.running - 1)
        run_id = self._run_ids.get(identity.key)
        if run_id:
            self._safe("mark_interrupted", self._tracker.mark_interrupted, run_id, reason)

    def mark_running_interrupted(self, reason: str) -> None:
        """The driver is going down: trials still running are marked KILLED in MLflow, not left RUNNING; the
        trial journal has their start without a finish, so the relaunch runs them first. A finished trial whose
        MLflow writes the interrupt cut short gets them again (they are idempotent)."""
        for key, result in sorted(self._logging.items()):
            run_id = self._run_ids.get(key)
            if run_id:
                self._safe(f"re-logging trial {key[0]}", self._tracker.log_result, run_id, result)
        for key in sorted(set(self._ledger.running) - set(self._ledger.finished)):
            run_id = self._run_ids.get(key)
            if run_id:
                self._safe(f"marking trial {trial_id_of(*key)} interrupted", self._tracker.mark_interrupted,
                           run_id, reason)

    def _finish(self, identity: TrialIdentity, result: RunResult) -> None:
        self._release_slot(identity.key)
        finished = FinishedTrial(identity, result)
        try:
            self._store.write_result(finished)  # before MLflow: a relaunch re-logs from it
            self._store.journal("finish", identity, status=result.status.value)
        except OSError as exc:  # disk full: MLflow below still gets the result, and the relaunch reads it there
            self.storage_failed(f"result record of trial {identity.trial_id}", exc)
        self._ledger.finish(finished)
        run_id = self._run_ids.get(identity.key)
        if run_id:
            self._logging[identity.key] = result  # a Ctrl-C in the middle of these writes: they are redone
            self._safe("log_result", self._tracker.log_result, run_id, result)
            self._logging.pop(identity.key, None)
        self._progress.budget(identity.budget_label).add_finished(
            result.status, objective_value(result, PRIMARY_OBJECTIVE), result.flops, dict(identity.point))
        self._log_line(identity, result)

    def _log_line(self, identity: TrialIdentity, result: RunResult) -> None:
        label, point = identity.budget_label, identity.point
        if result.status.is_failure:
            self._stop.failed()
            log.warning("trial %s (%s, %s) %s: %s", identity.trial_id, label, identity.arm, result.status,
                        result.reason)
        elif result.status == TrialStatus.OK:
            loss = "-" if result.final_val_loss is None else f"{result.final_val_loss:.4f}"
            log.info("trial %s (%s, %s) ok: val_loss %s after %d steps in %.0f s [%s]", identity.trial_id, label,
                     identity.arm, loss, result.steps, result.wall_s or 0.0,
                     " ".join(f"{k}={v}" for k, v in sorted(point.items())))


def _driver_only() -> None:
    return None


class FailureStopper(tune.Stopper):
    """Stops the whole Tune experiment when the StopPolicy says so."""

    def __init__(self, stop: StopPolicy) -> None:
        self._stop = stop

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self._stop.stop_requested()
