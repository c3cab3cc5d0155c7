"""Run (or resume) a sweep on Ray Tune: the ONE module of coe-sweep that imports ray.

`launch(spec)` runs each budget level as its own Tune experiment (so the searcher learns per budget):

    tracker reachable? -> SweepStore.open (probe-write) -> lock -> tracker.start (parent run)
    -> resume state (result records + MLflow, keyed by config hash; re-log what MLflow missed)
    -> Ray (local, started here, bound to 127.0.0.1; or an existing cluster by cluster.address)
    -> per budget: Tuner(with_resources(with_parameters(run_trial)), OptunaSearch|grid,
                         ConcurrencyLimiter, optional ASHA, reuse_actors=True) ; driver-side callback:
                   journal + result record + MLflow child run per trial, live progress, failure policy
    -> tracker.finish -> Ray shut down (when started here) -> lock released

Infeasible suggestions are never trained: the searcher wraps Optuna's ask/tell, plans every suggestion
(coe_sweep.search.candidates.plan_trial), tells Optuna an infeasible one FAILED, records it (with its
reason) as rejected and asks again, at most MAX_SUGGEST_ATTEMPTS times per trial; after
RANDOM_AFTER_ATTEMPTS misses it asks with a random sampler so a converged TPE cannot stall. The same
loop skips configs already finished (a resumed sweep: Optuna is told their known values instead) and
configs running right now. Grid search walks the feasible candidates of `enumerate_candidates`.
Resume never relies on Tune's own experiment restore (it keeps only trials finished before the last
experiment-state save): the driver's result records and MLflow are the truth.
"""

from __future__ import annotations

import errno
import importlib
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from coe_sweep.run import RunResult
from coe_sweep.search.lock import ResultRecord, SweepStore
from coe_sweep.search.progress import PlainProgress, SweepProgress, progress_line, render_progress
from coe_sweep.search.ray_local import LOCAL_ONLY_ATTR, RaySettings, cluster_ray, is_loopback, local_ray
from coe_sweep.tracking.names import REJECTED_PREFIX, TRIAL_STATUSES
from runners.trainable import RUN_RESULT_KEY, objective_value, run_trial

log = logging.getLogger(__name__)

MAX_SUGGEST_ATTEMPTS = 64
RANDOM_AFTER_ATTEMPTS = 8
TRIAL_RETRIES = 1  # Tune re-runs a trial whose worker died (FailureConfig); trial exceptions are results
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0",
           # the driver writes its own records; Tune's CSV/JSON/TensorBoard loggers are pure overhead here
           "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
           # intermediate reports carry val_loss only; failed trials' final reports carry no objectives
           "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
           # the legacy console engine honours verbose=0 (the new one still prints a config box per budget)
           "RAY_AIR_NEW_OUTPUT": "0"}
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)  # the sweep directory stopped taking writes
PLAIN_PROGRESS_S = 30.0  # seconds between progress lines when stderr is not a terminal
ONE_LINE_LOGGERS = ("ray.tune.execution.experiment_state",)  # a failed state save: the reason, no traceback
QUIET_LOGGERS = ("ray.tune.analysis.experiment_analysis",  # warns for the result files we do not write
                 "ray._private.authentication.authentication_token_setup")  # "token authentication is enabled"


class _OneLine(logging.Filter):
    """Folds a record's exception into one line: Tune logs a failed experiment-state save (disk full) with a
    full traceback, while the sweep's own message already says what happened and what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg, record.args = f"{record.getMessage()}{record.exc_info[1]}", None
            record.exc_info, record.exc_text = None, None
        return True


_ONE_LINE = _OneLine()


# ----------------------------------------------------------------------------------------------- outcome
@dataclass
class TrialOutcome:
    config_hash: str
    budget_label: str
    params: dict[str, Any]
    status: str  # ok | diverged | oom | failed | pruned
    reason: str | None
    objectives: dict[str, float | None]
    flops: float
    resumed: bool = False  # finished in an earlier launch of this sweep
    pruned: bool = False  # stopped early by ASHA

    @property
    def val_loss(self) -> float | None:
        return self.objectives.get("val_loss")


@dataclass
class BudgetOutcome:
    label: str
    budget_flops: float | None
    trials: list[TrialOutcome] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # config hash (or params) -> reason
    rejected_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    exhausted: bool = False  # the searcher found no new feasible config within its attempts
    interrupted: list[str] = field(default_factory=list)  # config hashes cut short by a sweep stop (rerun)

    @property
    def ok(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.status == "ok"]

    @property
    def failed(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.status != "ok" and not t.pruned]

    @property
    def pruned(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.pruned]

    def best(self, objective: str = "val_loss") -> TrialOutcome | None:
        scored = [t for t in self.ok if t.objectives.get(objective) is not None]
        return min(scored, key=lambda t: t.objectives[objective], default=None)  # type: ignore[arg-type]


@dataclass
class SweepOutcome:
    name: str
    spec_hash: str
    tracking_uri: str
    storage_dir: Path
    objectives: list[tuple[str, str]]
    budgets: dict[str, BudgetOutcome]
    simulated: bool
    wall_s: float
    stopped_reason: str | None = None  # set when --max-failures stopped the sweep
    tracking_pending: int = 0  # MLflow writes still in the tracking journal (the store was down at the end)
    tracking_journal: Path | None = None  # where they are kept; the next launch replays them

    @property
    def trials(self) -> list[TrialOutcome]:
        return [t for b in self.budgets.values() for t in b.trials]

    @property
    def n_failed(self) -> int:
        return sum(len(b.failed) for b in self.budgets.values())

    @property
    def exit_code(self) -> int:
        """0 when every trial is ok (or pruned by ASHA) and tracked; 1 when anything failed, the sweep was
        stopped, or MLflow writes are still waiting in the tracking journal."""
        return 1 if self.n_failed or self.stopped_reason or self.tracking_pending else 0

    def pareto(self, label: str) -> list[TrialOutcome]:
        """Non-dominated ok trials of one budget under the sweep's objectives (min/max per objective)."""
        ok = [t for t in self.budgets[label].ok if all(t.objectives.get(n) is not None for n, _ in self.objectives)]

        def key(t: TrialOutcome) -> list[float]:
            return [t.objectives[n] if m == "min" else -t.objectives[n] for n, m in self.objectives]  # type: ignore[operator]

        def dominates(a: list[float], b: list[float]) -> bool:
            return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

        return [t for t in ok if not any(dominates(key(o), key(t)) for o in ok if o is not t)]


# ----------------------------------------------------------------------------------------- spec access
def _objectives(spec: Any) -> list[tuple[str, str]]:
    """search.objectives as (metric, 'min'|'max') pairs."""
    return list(spec.search.objective_modes) or [("val_loss", "min")]


def sweep_dir(spec: Any) -> Path:
    """The per-sweep storage directory: <cluster.storage_path (default ./sweeps/<name>)>/<spec hash[:12]>.

    Keyed by the spec hash too, so that an edited spec (a different sweep in MLflow) never resumes from
    another spec's result records; `tracking` and `cluster` are not part of the hash.
    """
    root = Path(spec.cluster.storage_path or Path("sweeps") / spec.name).expanduser().absolute()
    return root / spec.spec_hash()[:12]


def _flat_params(plan: Any) -> dict[str, Any]:
    """The trial's MLflow params: flattened run spec (model.*, train.*, data.*, horizon.*) + budget."""
    from coe_sweep.search.candidates import flat_params

    return {**flat_params(plan.run_spec), "budget_label": plan.budget_label, "budget_flops": plan.budget_flops}


# ----------------------------------------------------------------------------------------- shared state
@dataclass
class _Sweep:
    """Driver-side state shared by the searchers, the callback and the stopper of one launch."""

    spec: Any
    store: SweepStore
    tracker: Any
    objectives: list[tuple[str, str]]
    simulated: bool
    max_failures: int | None
    progress: SweepProgress
    outcome: dict[str, BudgetOutcome]
    finished: dict[str, ResultRecord]  # config hash -> record (earlier launches and this one)
    plans: dict[str, Any] = field(default_factory=dict)  # config hash -> TrialPlan (this launch)
    run_ids: dict[str, str] = field(default_factory=dict)  # config hash -> MLflow child run id
    running: set[str] = field(default_factory=set)
    logging: set[str] = field(default_factory=set)  # finished, their MLflow record being written right now
    simulate_trial_s: float = 0.0
    n_failed: int = 0
    stopped_reason: str | None = None
    storage_error: str | None = None  # the sweep directory stopped taking writes (disk full, quota, ...)
    logged_rejected: dict[str, int] = field(default_factory=dict)  # budget label -> count sent to MLflow
    grid: dict[str, tuple[Any, int]] = field(default_factory=dict)  # budget label -> (grid searcher, planned)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # Tune pickles the Tuner (for its own restore) and the searcher (experiment-state saves); the live
        # driver state (tracker client, lock, store) is not picklable and never needed there: resume reads
        # the result records and MLflow instead.
        return _detached, ()

    def stop_requested(self) -> bool:
        if self.max_failures is not None and self.n_failed >= self.max_failures and not self.stopped_reason:
            self.stopped_reason = (f"stopped after {self.n_failed} failed trial(s) "
                                   f"(max_failures={self.max_failures})")
            log.warning("sweep %s", self.stopped_reason)
        return self.stopped_reason is not None

    def log_rejected(self, label: str) -> None:
        """Rejected candidates have no child run: their count per budget goes on the parent run for `status`."""
        n = self.progress.budget(label).rejected
        if self.logged_rejected.get(label) == n:
            return
        self.logged_rejected[label] = n
        try:
            self.tracker.log_sweep_metrics({f"{REJECTED_PREFIX}{label}": n})
        except Exception:  # tracking never kills the sweep
            log.exception("tracking: logging the rejected count of budget %s failed", label)

    def storage_failed(self, what: str, exc: OSError) -> None:
        """The sweep directory stopped taking writes: stop the sweep cleanly, keep everything finished.

        A trial whose result record could not be written is still logged to MLflow, which a relaunch reads;
        trials cut short by the stop are marked interrupted and run again by the relaunch.
        """
        if self.storage_error is not None:
            return
        self.storage_error = f"{exc.strerror or exc} ({what})"
        self.stopped_reason = (
            f"stopped: cannot write to the sweep directory {self.store.root}: {self.storage_error}. "
            f"Free space there (or set cluster.storage_path), then run `coe-sweep launch` with the same spec "
            f"again: finished trials are kept and none is retrained")
        log.error("sweep %s", self.stopped_reason)


def _detached() -> None:
    return None


# ------------------------------------------------------------------------------------------- searchers
class _FeasibleOptunaSearch(OptunaSearch):
    """OptunaSearch whose suggestions are always feasible, new, and planned (see the module docstring)."""

    def __init__(self, sweep: _Sweep, budget: Any, space: dict[str, Any], sampler: optuna.samplers.BaseSampler,
                 seed: int) -> None:
        names = [n for n, _ in sweep.objectives]
        modes = [m for _, m in sweep.objectives]
        multi = len(names) > 1
        super().__init__(space=space, metric=names if multi else names[0], mode=modes if multi else modes[0],
                         sampler=sampler, study_name=f"{sweep.spec.name}-{budget.label}")
        self._sweep, self._budget, self._seed_int = sweep, budget, seed
        self._random = optuna.samplers.RandomSampler(seed=seed + 1)
        self._hash_of_trial: dict[str, str] = {}

    def warm_start(self, records: list[ResultRecord], rerun_first: list[dict[str, Any]]) -> None:
        """Tell Optuna the trials finished in earlier launches; queue the interrupted ones first."""
        for rec in records:
            params = {k: rec.params[k] for k in self._space if k in rec.params}
            if len(params) != len(self._space):
                continue  # logged by MLflow only, sampled names unknown: counted, not taught
            values = self._values(RunResult.from_dict(rec.result)) if rec.result.get("status") == "ok" else None
            state = optuna.trial.TrialState.COMPLETE if values else optuna.trial.TrialState.FAIL
            try:
                self._ot_study.add_trial(optuna.trial.create_trial(
                    state=state, values=values, params=params, distributions=self._space))
            except ValueError as exc:  # a value outside today's space: skip teaching it
                log.debug("not warm-starting with %s: %s", rec.config_hash, exc)
        for params in rerun_first:
            self._ot_study.enqueue_trial(params, skip_if_exists=True)

    def _values(self, result: RunResult) -> list[float] | None:
        values = [objective_value(result, n) for n, _ in self._sweep.objectives]
        return None if any(v is None for v in values) else values  # type: ignore[return-value]

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        sweep, label = self._sweep, self._budget.label
        from coe_sweep.search.candidates import plan_trial

        for attempt in range(MAX_SUGGEST_ATTEMPTS):
            if attempt >= RANDOM_AFTER_ATTEMPTS:
                saved, self._ot_study.sampler = self._ot_study.sampler, self._random
            try:
                ot_trial = self._ot_study.ask(fixed_distributions=self._space)
            finally:
                if attempt >= RANDOM_AFTER_ATTEMPTS:
                    self._ot_study.sampler = saved
            params = dict(ot_trial.params)
            plan = plan_trial(sweep.spec, self._budget, params)
            fail = optuna.trial.TrialState.FAIL
            if not plan.feasible:
                self._ot_study.tell(ot_trial, state=fail)
                bo = sweep.outcome[label]
                if plan.config_hash not in bo.rejected:
                    bo.rejected[plan.config_hash] = str(plan.reason)
                    bo.rejected_params[plan.config_hash] = params
                    sweep.progress.budget(label).rejected += 1
                continue
            if plan.config_hash in sweep.finished:
                rec = sweep.finished[plan.config_hash]
                values = self._values(RunResult.from_dict(rec.result))
                if values is not None:
                    self._ot_study.tell(ot_trial, values)
                else:
                    self._ot_study.tell(ot_trial, state=fail)
                continue
            if plan.config_hash in sweep.running:
                self._ot_study.tell(ot_trial, state=fail)
                continue
            self._ot_trials[trial_id] = ot_trial
            self._hash_of_trial[trial_id] = plan.config_hash
            sweep.plans[plan.config_hash] = plan
            sweep.running.add(plan.config_hash)
            return {"params": params, "budget_label": label, "config_hash": plan.config_hash}
        sweep.outcome[label].exhausted = True
        log.warning("budget %s: no new feasible configuration in %d attempts; this budget ends here",
                    label, MAX_SUGGEST_ATTEMPTS)
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # Tune hands searchers flattened results; the final report is the one with a `status`
        if "status" in result:  # (it repeats the last evaluation's step)
            return
        if not isinstance(self.metric, list) and self.metric in result and trial_id in self._ot_trials:
            self._ot_trials[trial_id].report(result[self.metric], int(result.get("step", 0)))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.pop(trial_id, None)
        self._sweep.running.discard(self._hash_of_trial.pop(trial_id, ""))
        if ot_trial is None:
            return
        result = result or {}
        final = "status" in result and not error
        values = [result.get(n) for n, _ in self._sweep.objectives] if final and result["status"] == "ok" else None
        if values is not None and all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            self._ot_study.tell(ot_trial, values if len(values) > 1 else values[0])
        else:  # failed (diverged, oom, error) or stopped early (ASHA, max-failures)
            state = optuna.trial.TrialState.FAIL if error or final else optuna.trial.TrialState.PRUNED
            self._ot_study.tell(ot_trial, state=state)


class _GridSearch(Searcher):
    """Walks a list of feasible, not yet finished TrialPlans in order."""

    def __init__(self, sweep: _Sweep, plans: list[Any]) -> None:
        names = [n for n, _ in sweep.objectives]
        super().__init__(metric=names[0], mode=sweep.objectives[0][1])
        self._sweep, self._queue, self._hash_of_trial = sweep, list(plans), {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if not self._queue:
            return Searcher.FINISHED
        plan = self._queue.pop(0)
        self._sweep.plans[plan.config_hash] = plan
        self._sweep.running.add(plan.config_hash)
        self._hash_of_trial[trial_id] = plan.config_hash
        return {"params": dict(plan.sampled), "budget_label": plan.budget_label, "config_hash": plan.config_hash}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._sweep.running.discard(self._hash_of_trial.pop(trial_id, ""))

    def save(self, checkpoint_path: str) -> None:  # resume reads result records, not Tune's searcher state
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None


# ------------------------------------------------------------------------------------ driver callback
class _DriverCallback(tune.Callback):
    """Journal + result records + MLflow, from the driver; updates live progress; never raises."""

    def __init__(self, sweep: _Sweep) -> None:
        self._sweep = sweep

    def _safe(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:  # tracking must never kill the sweep; the result record lets resume re-log
            log.exception("tracking: %s failed (the result record keeps the trial for a relaunch)", what)
            return None

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        sweep, cfg = self._sweep, trial.config
        h, label = cfg["config_hash"], cfg["budget_label"]
        plan = sweep.plans.get(h)
        try:
            sweep.store.journal("start", h, budget_label=label, params=cfg["params"])
        except OSError as exc:
            sweep.storage_failed("trial journal", exc)
        sweep.progress.budget(label).running += 1
        sweep.log_rejected(label)
        if plan is not None and h not in sweep.run_ids:
            run_id = self._safe("start_trial", sweep.tracker.start_trial, h, _flat_params(plan),
                                _trial_tags(plan, sweep.simulated))
            if run_id:
                sweep.run_ids[h] = run_id

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        run_id = self._sweep.run_ids.get(trial.config["config_hash"])
        if run_id and RUN_RESULT_KEY not in result and "val_loss" in result:
            metrics = {k: result[k] for k in ("val_loss", "train_loss")
                       if isinstance(result.get(k), float) and math.isfinite(result[k])}
            self._safe("log_progress", self._sweep.tracker.log_progress, run_id, int(result.get("step", 0)),
                       metrics)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if RUN_RESULT_KEY in last:
            self._finish(trial, RunResult.from_dict(last[RUN_RESULT_KEY]), pruned=False)
            return
        step, val = last.get("step"), last.get("val_loss")
        if self._sweep.stopped_reason:
            self._interrupted(trial, f"interrupted at step {step}: the sweep was {self._sweep.stopped_reason}")
            return
        reason = f"pruned: ASHA stopped it at step {step} (val_loss {val})"
        result = RunResult(status="pruned", reason=reason, steps=int(step or 0), tokens=int(last.get("tokens") or 0),
                           val_curve=[(int(step), float(val))] if step is not None and val is not None else [],
                           simulated=self._sweep.simulated)
        plan = self._sweep.plans.get(trial.config["config_hash"])
        if plan is not None:
            result.train_flops_per_token = float(plan.train_flops_per_token)
            result.flops = result.train_flops_per_token * result.tokens
            result.params_total, result.params_active = int(plan.params_total), int(plan.params_active)
        self._finish(trial, result, pruned=True)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        error = trial.get_error() if hasattr(trial, "get_error") else None
        text = str(error or "the trial's worker died").strip().splitlines()
        reason = f"error after {TRIAL_RETRIES} retr{'y' if TRIAL_RETRIES == 1 else 'ies'}: " + (
            text[-1] if text else "unknown")
        self._finish(trial, RunResult(status="failed", reason=reason[:2000], simulated=self._sweep.simulated),
                     pruned=False)

    def _interrupted(self, trial: Any, reason: str) -> None:
        """Cut short by the sweep's own stop: no result record, so the relaunch runs it again."""
        sweep, h = self._sweep, trial.config["config_hash"]
        sweep.running.discard(h)
        bp = sweep.progress.budget(trial.config["budget_label"])
        bp.running = max(0, bp.running - 1)
        sweep.outcome[trial.config["budget_label"]].interrupted.append(h)
        run_id = sweep.run_ids.get(h)
        if run_id:
            self._safe("mark_interrupted", sweep.tracker.mark_interrupted, run_id, reason)

    def _finish(self, trial: Any, result: RunResult, *, pruned: bool) -> None:
        sweep, cfg = self._sweep, trial.config
        h, label, params = cfg["config_hash"], cfg["budget_label"], cfg["params"]
        record = ResultRecord(h, label, params, result.to_dict(), {"pruned": pruned} if pruned else {})
        try:
            sweep.store.write_result(record)  # before MLflow: a relaunch re-logs from it
            sweep.store.journal("finish", h, status=result.status)
        except OSError as exc:  # disk full: MLflow below still gets the result, and the relaunch reads it there
            sweep.storage_failed(f"result record of trial {h}", exc)
        sweep.finished[h] = record
        sweep.running.discard(h)
        run_id = sweep.run_ids.get(h)
        if run_id:
            sweep.logging.add(h)  # a Ctrl-C in the middle of these writes: _mark_running_interrupted redoes them
            self._safe("log_result", sweep.tracker.log_result, run_id, result)
            sweep.logging.discard(h)
        outcome = _trial_outcome(record, sweep.objectives, resumed=False)
        sweep.outcome[label].trials.append(outcome)
        bp = sweep.progress.budget(label)
        bp.running = max(0, bp.running - 1)
        bp.add_finished(result.status, outcome.val_loss, result.flops, params, pruned=pruned)
        if result.status != "ok" and not pruned:
            sweep.n_failed += 1
            log.warning("trial %s (%s) %s: %s", h, label, result.status, result.reason)
        elif not pruned:
            loss = "-" if result.final_val_loss is None else f"{result.final_val_loss:.4f}"
            log.info("trial %s (%s) ok: val_loss %s after %d steps in %.0f s [%s]", h, label, loss, result.steps,
                     result.wall_s or 0.0, " ".join(f"{k}={v}" for k, v in sorted(params.items())))


class _FailureStopper(tune.Stopper):
    def __init__(self, sweep: _Sweep) -> None:
        self._sweep = sweep

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self._sweep.stop_requested()


def _trial_tags(plan: Any, simulated: bool) -> dict[str, str]:
    return {"coe_sweep.budget_label": plan.budget_label, "coe_sweep.family": plan.run_spec.model.family,
            "coe_sweep.simulated": "true" if simulated else "false"}


def _trial_outcome(record: ResultRecord, objectives: list[tuple[str, str]], *, resumed: bool) -> TrialOutcome:
    result = RunResult.from_dict(record.result)
    return TrialOutcome(record.config_hash, record.budget_label, record.params, result.status, result.reason,
                        {n: objective_value(result, n) for n, _ in objectives} | {
                            "val_loss": objective_value(result, "val_loss")},
                        result.flops, resumed=resumed,
                        pruned=bool(record.extra.get("pruned")) or result.status == "pruned")


# ------------------------------------------------------------------------------------------------- Ray
@contextmanager
def ray_runtime(address: str | None, num_cpus: int, num_gpus: int | None = None) -> Iterator[dict[str, Any]]:
    """Connect to `address`, or start a local Ray in a private temp dir with every listener on 127.0.0.1 and
    token authentication on (coe_sweep.search.ray_local); always shut down.

    The local temp dir is /tmp/coe-ray-<driver pid>-XXXX (short: Ray's socket paths must fit 107 bytes),
    so a test that kill -9s a driver can find and reap the Ray processes that outlive it.
    """
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    info: dict[str, Any] = {"address": address}
    if address:
        settings = cluster_ray(address)
    else:
        info["temp_dir"] = tempfile.mkdtemp(prefix=f"coe-ray-{os.getpid()}-", dir="/tmp")
        settings = local_ray(num_cpus=num_cpus, num_gpus=num_gpus, temp_dir=info["temp_dir"], environ=os.environ,
                             home=Path.home())
    os.environ.update(settings.env)
    for warning in settings.warnings:
        log.warning("%s", warning)
    context = _ray_init(settings)
    try:
        node_ip = str(context.address_info.get("node_ip_address", ""))
        if not address and not is_loopback(node_ip):  # fail closed if a Ray upgrade changes the switch
            raise ResourceError(f"the local Ray started on {node_ip}, not on 127.0.0.1; refusing to run a sweep "
                                "that the network can reach")
        yield info
    finally:
        ray.shutdown()
        if info.get("temp_dir"):  # logs of a clean run are not kept; a crashed run keeps nothing useful either
            shutil.rmtree(info["temp_dir"], ignore_errors=True)


def _ray_init(settings: RaySettings) -> Any:
    """`ray.init` with `settings.spawn_env` set while it starts Ray's processes, and Ray's local-only switch off
    in this process too: Ray reads it when `ray` is imported, before ray_runtime could set
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER (which Ray's own processes inherit)."""
    module = importlib.import_module(LOCAL_ONLY_ATTR[0])
    previous = getattr(module, LOCAL_ONLY_ATTR[1])
    saved_env = {key: os.environ.get(key) for key in settings.spawn_env}
    os.environ.update(settings.spawn_env)
    if settings.local_only:
        setattr(module, LOCAL_ONLY_ATTR[1], False)
    try:
        return ray.init(**settings.init_kwargs)
    finally:
        setattr(module, LOCAL_ONLY_ATTR[1], previous)
        for key, value in saved_env.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def _check_resources(spec: Any) -> None:
    have = ray.cluster_resources()
    need_gpu = float(spec.cluster.gpus_per_trial or 0)
    if need_gpu > have.get("GPU", 0):
        raise ResourceError(f"cluster.gpus_per_trial: found {need_gpu}; the Ray cluster has "
                            f"{have.get('GPU', 0)} GPU(s); expected <= that (or 0 for CPU trials)")
    if float(spec.cluster.cpus_per_trial) > have.get("CPU", 0):
        raise ResourceError(f"cluster.cpus_per_trial: found {spec.cluster.cpus_per_trial}; the Ray cluster "
                            f"has {have.get('CPU', 0)} CPU(s); expected <= that")


class ResourceError(RuntimeError):
    """The Ray cluster cannot fit one trial (nothing was trained)."""


class SweepExists(RuntimeError):
    """--no-resume was asked for a sweep that already has finished trials."""


# ---------------------------------------------------------------------------------------------- resume
def _resume_state(spec: Any, store: SweepStore, tracker: Any, by_label: dict[str, Any],
                  simulated: bool) -> dict[str, ResultRecord]:
    """Finished trials of earlier launches, keyed by config hash; re-logs to MLflow what it missed."""
    from coe_sweep.search.candidates import plan_trial

    records = store.read_results()
    logged = tracker.finished_trials()
    for h, rec in records.items():
        if h in logged or rec.budget_label not in by_label:
            continue
        log.info("re-logging trial %s to MLflow from its result record", h)
        try:
            plan = plan_trial(spec, by_label[rec.budget_label], dict(rec.params))
        except (TypeError, ValueError, KeyError) as exc:  # params this spec cannot plan: keep the record only
            log.warning("trial %s: its result record's params cannot be planned (%s); kept, not re-logged", h,
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            continue
        run_id = tracker.start_trial(h, _flat_params(plan), _trial_tags(plan, simulated))
        tracker.log_result(run_id, RunResult.from_dict(rec.result))
    space_names = set(spec.space)
    for h, tr in logged.items():
        if h in records:
            continue
        params = {k: tr.params.get(k, tr.params.get(f"model.{k}")) for k in space_names}
        metrics = _finite_metrics(h, tr.metrics)
        result = RunResult(status=tr.status if tr.status in TRIAL_STATUSES else "failed",
                           reason=tr.reason, final_val_loss=metrics.get("final_val_loss"),
                           flops=float(metrics.get("train_flops", 0.0)),
                           peak_memory_bytes=_int_or_none(metrics.get("peak_memory_bytes")),
                           params_total=int(metrics.get("params_total", 0)),
                           params_active=int(metrics.get("params_active", 0)))
        records[h] = ResultRecord(h, tr.budget_label or "?", {k: v for k, v in params.items() if v is not None},
                                  result.to_dict(), {"from": "mlflow"})
    return records


def _finite_metrics(config_hash: str, metrics: dict[str, float]) -> dict[str, float]:
    """The metrics that are numbers; the others (NaN, inf: a trial that logged what it could not measure) are
    dropped with one line, so a relaunch repairs the record instead of failing on it."""
    bad = sorted(k for k, v in metrics.items() if not isinstance(v, int | float) or not math.isfinite(v))
    if bad:
        log.warning("trial %s: MLflow metric(s) %s are not finite numbers; resumed without them", config_hash,
                    ", ".join(f"{k}={metrics[k]!r}" for k in bad[:5]))
    return {k: v for k, v in metrics.items() if k not in bad}


def _int_or_none(x: Any) -> int | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else int(x)


# ---------------------------------------------------------------------------------------------- launch
def _asha(spec: Any) -> Any:
    """ASHA over evaluations: each intermediate report is one evaluation (`training_iteration`)."""
    asha = spec.search.asha
    if not asha.enabled:
        return None
    from ray.tune.schedulers import ASHAScheduler

    interval = max(1, int(spec.train.eval_interval))
    max_evals = (spec.budget.max_steps or 10**6) // interval + 2  # evals at 0?, every interval, the end
    return ASHAScheduler(time_attr="training_iteration", metric="val_loss", mode="min", max_t=int(max_evals),
                         grace_period=int(asha.grace_period), reduction_factor=float(asha.reduction_factor))


def _sampler(algorithm: str, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 2)))
    raise ValueError(f"search.algorithm: found {algorithm!r}; expected one of grid, random, tpe, nsga2")


def launch(spec: Any, *, simulate: bool = False, resume: bool = True, max_failures: int | None = None,
           progress: bool = True, simulate_trial_s: float = 0.0) -> SweepOutcome:
    """Run (or resume) the sweep `spec` (a coe_sweep.spec.SweepSpec); see the module docstring.

    Raises before anything runs: StorageError (storage path unwritable), SweepLocked (another launch
    holds this sweep), TrackingUnavailable (MLflow unreachable), SweepExists (resume=False on a sweep
    with finished trials), ResourceError (the cluster cannot fit one trial).
    """
    from coe_sweep.search.candidates import budgets as spec_budgets
    from coe_sweep.tracking import SweepTracker, check_reachable

    start_s = time.time()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ONE_LINE_LOGGERS:
        if _ONE_LINE not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_ONE_LINE)
    objectives = _objectives(spec)
    max_failures = max_failures if max_failures is not None else getattr(spec.search, "max_failures", None)
    check_reachable(spec.tracking.uri)  # before anything is created on disk: a dead server leaves nothing behind
    store = SweepStore.open(sweep_dir(spec))
    store.acquire()
    # Ctrl-C stops the whole sweep: Tune's own SIGINT handler would end only the running budget's
    # experiment and let the next budget start.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    tracker, status, outcome, sweep = None, "FAILED", None, None
    try:
        tracker = SweepTracker(spec.tracking.uri, spec.name, spec.to_yaml(), spec.spec_hash(),
                               journal_dir=store.root / "tracking-journal", experiment=spec.tracking.experiment,
                               simulated=simulate)
        tracker.start()
        budget_list = list(spec_budgets(spec))
        by_label = {b.label: b for b in budget_list}
        finished = _resume_state(spec, store, tracker, by_label, simulate)
        if finished and not resume:
            raise SweepExists(f"sweep {spec.name!r} already has {len(finished)} finished trial(s) in "
                              f"{store.root}; run with --resume to continue it, or change `name` for a new sweep")
        sweep = _Sweep(spec=spec, store=store, tracker=tracker, objectives=objectives, simulated=simulate,
                       max_failures=max_failures, progress=SweepProgress(spec.name, simulated=simulate),
                       outcome={b.label: BudgetOutcome(b.label, _budget_flops(b)) for b in budget_list},
                       finished=finished, simulate_trial_s=simulate_trial_s)
        sweep.progress.start_s = start_s
        _prepare_progress(sweep, budget_list)
        live = _live(sweep) if progress else nullcontext()
        with live, ray_runtime(spec.cluster.address, _local_cpus(spec)), _sigterm_as_interrupt():
            _check_resources(spec)
            for budget in budget_list:
                if sweep.stop_requested():
                    break
                _run_budget(sweep, budget)
            status = "FAILED" if sweep.stopped_reason else "FINISHED"
        outcome = SweepOutcome(spec.name, spec.spec_hash(), spec.tracking.uri, store.root, objectives,
                               sweep.outcome, simulate, time.time() - start_s, sweep.stopped_reason)
        return outcome
    except KeyboardInterrupt:
        status = "KILLED"
        if sweep is not None:
            _mark_running_interrupted(sweep, "interrupted: the driver was stopped (Ctrl-C or SIGTERM)")
        raise
    finally:
        if tracker is not None and tracker.parent_run_id is not None:  # started: end the parent run
            try:
                tracker.finish(status)
            except Exception as exc:  # noqa: BLE001 - the launch's own outcome or error matters more
                from coe_sweep.tracking.connection import short_error

                log.error("tracking: finishing the parent run failed: %s", short_error(exc, spec.tracking.uri))
            if outcome is not None:  # the store went away and has not come back: say so, keep the journal
                outcome.tracking_pending = tracker.pending_writes
                outcome.tracking_journal = tracker.journal.path
        store.release()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`docker stop`, `kill`) stops the sweep like Ctrl-C. Installed after `ray.init`, whose own
    handler would otherwise exit the driver on the spot, leaving trials RUNNING in MLflow."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _mark_running_interrupted(sweep: _Sweep, reason: str) -> None:
    """The driver is going down: trials still running are marked KILLED in MLflow, not left RUNNING; the
    trial journal has their start without a finish, so the relaunch runs them first. A finished trial whose
    MLflow writes the interrupt cut short gets them again (they are idempotent)."""
    for h in sorted(sweep.logging):
        run_id, record = sweep.run_ids.get(h), sweep.finished.get(h)
        if run_id and record is not None:
            try:
                sweep.tracker.log_result(run_id, RunResult.from_dict(record.result))
            except Exception:  # going down anyway; the relaunch re-logs it from its result record
                log.exception("tracking: re-logging trial %s failed", h)
    for h in sorted(sweep.running - set(sweep.finished)):
        run_id = sweep.run_ids.get(h)
        if run_id:
            try:
                sweep.tracker.mark_interrupted(run_id, reason)
            except Exception:  # going down anyway; the relaunch reuses the child run
                log.exception("tracking: marking trial %s interrupted failed", h)


def _budget_flops(budget: Any) -> float | None:
    flops = getattr(budget, "flops", None)
    return None if flops is None else float(flops)


def _local_cpus(spec: Any) -> int:
    """CPUs of a local Ray: cluster.num_cpus, else enough for max_concurrent trials, else every core."""
    c = spec.cluster
    if c.num_cpus:
        return int(c.num_cpus)
    if c.max_concurrent:
        return max(1, math.ceil(c.max_concurrent * float(c.cpus_per_trial)))
    return os.cpu_count() or 1


def _max_concurrent(spec: Any) -> int:
    """cluster.max_concurrent, else as many trials as the Ray cluster's CPUs (and GPUs) fit."""
    if spec.cluster.max_concurrent:
        return int(spec.cluster.max_concurrent)
    have = ray.cluster_resources()
    fit = have.get("CPU", 1) / float(spec.cluster.cpus_per_trial)
    if spec.cluster.gpus_per_trial:
        fit = min(fit, have.get("GPU", 0) / float(spec.cluster.gpus_per_trial))
    return max(1, int(fit))


def _live(sweep: _Sweep) -> Any:
    """The live table on an interactive terminal; elsewhere (logs, CI) one plain progress line on stderr
    every COE_SWEEP_PROGRESS_S seconds (default 30), since a redrawn table would flood a log."""
    from rich.live import Live

    from coe_sweep.console import is_terminal, make_console

    if not is_terminal(stderr=True):
        return PlainProgress(lambda: progress_line(sweep.progress), _progress_interval_s())
    return Live(get_renderable=lambda: render_progress(sweep.progress), console=make_console(stderr=True),
                refresh_per_second=2, transient=False)


def _progress_interval_s() -> float:
    raw = os.environ.get("COE_SWEEP_PROGRESS_S", "")
    try:
        value = float(raw) if raw else PLAIN_PROGRESS_S
    except ValueError:
        value = PLAIN_PROGRESS_S
    return value if value > 0 else PLAIN_PROGRESS_S


def _prepare_progress(sweep: _Sweep, budget_list: list[Any]) -> None:
    """Every budget's plan and earlier results up front, so progress and ETA cover the whole sweep."""
    trials = sweep.spec.search.trials_per_budget  # None: every feasible grid point / default_trials samples
    for budget in budget_list:
        label = budget.label
        bp = sweep.progress.budget(label)
        bp.budget_flops = _budget_flops(budget)
        for rec in sweep.finished.values():
            if rec.budget_label == label:
                outcome = _trial_outcome(rec, sweep.objectives, resumed=True)
                sweep.outcome[label].trials.append(outcome)
                bp.add_finished(outcome.status, outcome.val_loss, outcome.flops, rec.params, pruned=outcome.pruned)
                bp.resumed += 1
        if sweep.spec.search.algorithm == "grid":
            sweep.grid[label] = _grid_searcher(sweep, budget, trials)
            bp.planned_trials = sweep.grid[label][1]
        else:
            bp.planned_trials = sweep.spec.search.default_trials
        bp.planned_flops = bp.planned_trials * (bp.budget_flops or 0.0)


def _run_budget(sweep: _Sweep, budget: Any) -> None:
    spec, label = sweep.spec, budget.label
    bp = sweep.progress.budget(label)
    planned = bp.planned_trials
    if spec.search.algorithm == "grid":
        searcher = sweep.grid[label][0]
    else:
        searcher = _optuna_searcher(sweep, budget, planned)
    remaining = planned - bp.resumed
    if remaining <= 0:
        log.info("budget %s: all %d trials already finished", label, planned)
        return
    names = tuple(n for n, _ in sweep.objectives)
    trainable = tune.with_parameters(run_trial, spec=_without_credentials(spec), report=tune.report,
                                     simulate=sweep.simulated,
                                     simulate_trial_s=sweep.simulate_trial_s,
                                     objectives=names)
    resources = {"cpu": float(spec.cluster.cpus_per_trial), "gpu": float(spec.cluster.gpus_per_trial or 0)}
    attempt = len(list(sweep.store.tune_dir.glob(f"{label}-*")))
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=_max_concurrent(spec)),
                                    scheduler=_asha(spec), num_samples=remaining, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{label}-{attempt}", storage_path=str(sweep.store.tune_dir),
                                  callbacks=[_DriverCallback(sweep)], stop=_FailureStopper(sweep),
                                  failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES), verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))
    try:
        tuner.fit()
        sweep.log_rejected(label)
    except OSError as exc:  # Tune's own experiment state on a full (or vanished) sweep directory
        if exc.errno not in STORAGE_ERRNOS:
            raise
        sweep.storage_failed("Ray Tune experiment state", exc)


def _without_credentials(spec: Any) -> Any:
    """The spec the workers get: trials never write to MLflow (the driver does), so the tracking URI travels
    without its password (Tune keeps the trainable's parameters in the object store and its experiment state)."""
    from coe_sweep.tracking.connection import redact_uri

    return spec.model_copy(update={"tracking": spec.tracking.model_copy(update={"uri": redact_uri(spec.tracking.uri)})})


def _optuna_searcher(sweep: _Sweep, budget: Any, trials: int) -> _FeasibleOptunaSearch:
    from coe_sweep.search.space import optuna_space

    seed = int(sweep.spec.search.seed)
    searcher = _FeasibleOptunaSearch(sweep, budget, dict(optuna_space(sweep.spec)),
                                     _sampler(sweep.spec.search.algorithm, seed, trials), seed)
    label = budget.label
    done = [r for r in sweep.finished.values() if r.budget_label == label]
    rerun = [ev["params"] for h, ev in sweep.store.unfinished_starts().items()
             if ev.get("budget_label") == label and h not in sweep.finished]
    searcher.warm_start(done, rerun)
    return searcher


def _grid_searcher(sweep: _Sweep, budget: Any, trials: int | None) -> tuple[_GridSearch, int]:
    from coe_sweep.search.candidates import plan_trial
    from coe_sweep.search.space import grid_points

    plans = [plan_trial(sweep.spec, budget, point) for point in grid_points(sweep.spec)]
    bo = sweep.outcome[budget.label]
    for p in plans:
        if not p.feasible:
            bo.rejected[p.config_hash] = str(p.reason)
            bo.rejected_params[p.config_hash] = dict(p.sampled)
    sweep.progress.budget(budget.label).rejected = len(bo.rejected)
    seen: set[str] = set()  # execution-only fields (device, dispatch) do not change the hash: one trial each
    feasible = [p for p in plans if p.feasible and not (p.config_hash in seen or seen.add(p.config_hash))]
    if trials is not None:
        feasible = feasible[:trials]
    todo = [p for p in feasible if p.config_hash not in sweep.finished]
    return _GridSearch(sweep, todo), len(feasible)
