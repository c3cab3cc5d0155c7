"""The driver-side Tune callback: every trial's start and end written to the sweep store, MLflow and progress.

On a trial's start: journal line, MLflow child run (params: the flattened run spec + budget), progress.
On each intermediate report: the step metrics to MLflow. On its end: the result record (BEFORE MLflow, so a
relaunch re-logs what MLflow missed), the journal's finish line, the MLflow result, the ledger, progress and
one log line. A trial Tune stopped without a final report was pruned by ASHA, or cut short by the sweep's
own stop (then it is marked interrupted and run again by the relaunch). Tracking errors never kill a sweep.
The MLflow writes are queued to one thread that applies them in order (coe_sweep.sweep.writes), so Tune's
event loop never waits on the tracking store; the store's writes stay on the loop.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ray import tune

from coe_sweep.sweep.ledger import Ledger, StopPolicy, TrialKey
from coe_sweep.sweep.logged import trial_params, trial_tags
from coe_sweep.sweep.progress import SweepProgress
from coe_sweep.sweep.store import SweepStore
from coe_sweep.sweep.writes import OrderedWrites
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
        self._run_ids: dict[TrialKey, Future[Any]] = {}  # the trial's MLflow run id (None: not created)
        self._writes = OrderedWrites()  # every MLflow write, in order, off Tune's event loop
        self._logged_rejected: dict[str, int] = {}
        self._started_s: dict[TrialKey, float] = {}  # trials holding a slot now, since when
        self.busy_slot_s = 0.0  # slot-seconds trials held, start to end (the sweep's own efficiency)
        self.trials_span_s = 0.0  # from the first trial's start to the last one's end, this launch
        self._first_start_s: float | None = None

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        # Tune pickles its Tuner, run_config included, for its own restore; coe-sweep never uses that
        # (resume reads the result records and MLflow), and this callback's tracker and lock exist only here.
        return _driver_only, ()

    def _on_run(self, key: TrialKey, what: str, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(run_id, *args)` for the trial's MLflow run (skipped when it has none)."""
        started = self._run_ids.get(key)
        if started is None:
            return

        def write() -> None:
            run_id = started.result()  # done already: the writes run in order
            if run_id:
                fn(run_id, *args)
        self._writes.submit(what, write)

    def close(self) -> None:
        """Wait for the queued MLflow writes (the sweep ends, or the driver goes down)."""
        self._writes.close()

    def log_rejected(self, label: str) -> None:
        """Rejected candidates have no child run: their count per budget goes on the parent run for `status`."""
        n = len(self._ledger.rejected.get(label, {}))
        self._progress.budget(label).rejected = n
        if self._logged_rejected.get(label) == n:
            return
        self._logged_rejected[label] = n
        self._writes.submit("log the rejected count", self._tracker.log_sweep_metrics,
                            {f"{REJECTED_PREFIX}{label}": n})

    def storage_failed(self, what: str, exc: OSError) -> None:
        self._stop.storage_failed(str(self._store.root), what, exc)

    def _release_slot(self, identity: TrialIdentity) -> None:
        """The trial ended (finished, failed or interrupted): it stops holding a slot and counting as running."""
        started, now = self._started_s.pop(identity.key, None), time.monotonic()
        if started is not None:
            self.busy_slot_s += now - started
            bp = self._progress.budget(identity.budget_label)
            bp.running = max(0, bp.running - 1)
        if self._first_start_s is not None:
            self.trials_span_s = now - self._first_start_s

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        identity = trial_identity(trial.config)
        if identity.key not in self._started_s:  # (Tune restarts a failed trial with the same config)
            self._progress.budget(identity.budget_label).running += 1
        self._started_s[identity.key] = time.monotonic()
        if self._first_start_s is None:
            self._first_start_s = self._started_s[identity.key]
        try:
            self._store.journal("start", identity)
        except OSError as exc:
            self.storage_failed("trial journal", exc)
        self.log_rejected(identity.budget_label)
        plan = self._ledger.plan_of(identity.key)
        if plan is not None and identity.key not in self._run_ids:
            self._run_ids[identity.key] = self._writes.submit("start_trial", functools.partial(
                self._tracker.start_trial, identity.config_hash, trial_params(plan, identity),
                trial_tags(plan, identity, self._simulated), seed=identity.seed))

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if RUN_RESULT_KEY not in result and "val_loss" in result:
            metrics = {k: result[k] for k in ("val_loss", "train_loss")
                       if isinstance(result.get(k), float) and math.isfinite(result[k])}
            self._on_run(trial_identity(trial.config).key, "log_progress", self._tracker.log_progress,
                         int(result.get("step", 0)), metrics)

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
        self._release_slot(identity)
        self._ledger.interrupt(identity.key, identity.budget_label)
        self._on_run(identity.key, "mark_interrupted", self._tracker.mark_interrupted, reason)

    def mark_running_interrupted(self, reason: str) -> None:
        """The driver is going down: trials still running are marked KILLED in MLflow, not left RUNNING; the
        trial journal has their start without a finish, so the relaunch runs them first. The writes queued
        before (finished trials' results) are applied first."""
        self._writes.drain()  # the writes queued before the interrupt first (the thread was not interrupted)
        for key in sorted(set(self._ledger.running) - set(self._ledger.finished)):
            self._on_run(key, f"marking trial {trial_id_of(*key)} interrupted", self._tracker.mark_interrupted,
                         reason)
        self._writes.drain()

    def _finish(self, identity: TrialIdentity, result: RunResult) -> None:
        self._release_slot(identity)
        finished = FinishedTrial(identity, result)
        try:
            self._store.write_result(finished)  # before MLflow: a relaunch re-logs from it
            self._store.journal("finish", identity, status=result.status.value)
        except OSError as exc:  # disk full: MLflow below still gets the result, and the relaunch reads it there
            self.storage_failed(f"result record of trial {identity.trial_id}", exc)
        self._ledger.finish(finished)
        self._on_run(identity.key, "log_result", self._tracker.log_result, result)
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
