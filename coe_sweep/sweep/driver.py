"""Run (or resume) a sweep on Ray Tune: `launch(spec)`.

    tracker reachable? -> SweepStore.open (probe-write) -> lock -> tracker.start (parent run)
    -> resume (result records + MLflow, keyed by (config hash, seed); re-log what MLflow missed)
    -> Ray (local, started here: every listener on 127.0.0.1, token auth on; or a cluster by cluster.address)
    -> ONE Tuner for every budget: with_resources(with_parameters(run_trial | run_data_parallel_trial)),
       an InterleavedSearch over one
       searcher per budget (FeasibleOptunaSearch | GridSearch), ConcurrencyLimiter, optional ASHA per
       (budget, seed), reuse_actors=True; the driver-side callback writes the sweep store, MLflow and
       progress; the StopPolicy ends the sweep early (max failures, a full disk, Ctrl-C / SIGTERM)
    -> tracker.finish -> Ray shut down (when started here) -> lock released

Every budget keeps its own searcher (it learns per budget), but all run in one Tune experiment, so no slot
waits for a budget's last trial while work remains. The driver owns the ledger of trials and hands it to
the searchers and the callback explicitly. Intermediate reports (one per evaluation) are sent only when
something reads them: ASHA, or the live MLflow curves of real training (a simulated trial reports once).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from coe_sweep.search.planned import PlannedBudget, planned_trials
from coe_sweep.search.resources import TrialResources, trial_resources
from coe_sweep.spec.schema import SweepSpec
from coe_sweep.sweep.callback import STORAGE_ERRNOS, TRIAL_RETRIES, DriverCallback, FailureStopper
from coe_sweep.sweep.data_parallel import driver_and_worker_cpus, run_data_parallel_trial, train_storage
from coe_sweep.sweep.interleave import InterleavedSearch
from coe_sweep.sweep.ledger import Ledger, StopPolicy
from coe_sweep.sweep.outcome import SweepOutcome
from coe_sweep.sweep.progress import PlainProgress, SweepProgress, progress_line, render_progress
from coe_sweep.sweep.resume import finished_trials
from coe_sweep.sweep.runtime import (
    check_resources,
    cluster_slots,
    local_cpus,
    max_concurrent,
    quiet_tune_logging,
    ray_runtime,
    signals_stop,
)
from coe_sweep.sweep.scheduler import GroupedASHA
from coe_sweep.sweep.searchers import FeasibleOptunaSearch, GridSearch
from coe_sweep.sweep.store import SweepStore
from coe_sweep.tracking import SweepTracker, check_reachable
from coe_sweep.tracking.connection import redact_uri, short_error
from coe_sweep.trial import PRIMARY_OBJECTIVE, objective_value
from runners.trainable import run_trial

log = logging.getLogger(__name__)

PLAIN_PROGRESS_S = 30.0  # seconds between progress lines when stderr is not a terminal


class SweepExists(RuntimeError):
    """--no-resume was asked for a sweep that already has finished trials."""


def sweep_dir(spec: SweepSpec) -> Path:
    """The per-sweep storage directory: <cluster.storage_path (default ./sweeps/<name>)>/<spec hash[:12]>.

    Keyed by the spec hash too, so that an edited spec (a different sweep in MLflow) never resumes from
    another spec's result records; `tracking` and `cluster` are not part of the hash.
    """
    root = Path(spec.cluster.storage_path or Path("sweeps") / spec.name).expanduser().absolute()
    return root / spec.spec_hash()[:12]


def launch(spec: SweepSpec, *, simulate: bool = False, resume: bool = True, max_failures: int | None = None,
           progress: bool = True, simulate_trial_s: float = 0.0) -> SweepOutcome:
    """Run (or resume) the sweep `spec`; see the module docstring.

    Raises before anything runs: StorageError (storage path unwritable), SweepLocked (another launch
    holds this sweep), TrackingUnavailable (MLflow unreachable), SweepExists (resume=False on a sweep
    with finished trials), ResourceError (the cluster cannot fit one trial). Raises KeyboardInterrupt when
    Ctrl-C or SIGTERM stopped it (finished trials are kept, running ones marked interrupted).
    """
    start_s = time.time()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_tune_logging()
    check_reachable(spec.tracking.uri or "")  # before anything is created on disk: a dead server leaves nothing
    store = SweepStore.open(sweep_dir(spec))
    store.acquire()
    tracker: SweepTracker | None = None
    callback: DriverCallback | None = None
    status, outcome = "FAILED", None
    try:
        tracker = SweepTracker(spec.tracking.uri or "", spec.name, spec.to_yaml(), spec.spec_hash(),
                               journal_dir=store.root / "tracking-journal", experiment=spec.tracking.experiment,
                               simulated=simulate)
        tracker.start()
        ledger = Ledger.resumed_from(finished_trials(spec, store, tracker, simulated=simulate))
        if ledger.finished and not resume:
            raise SweepExists(f"sweep {spec.name!r} already has {len(ledger.finished)} finished trial(s) in "
                              f"{store.root}; run with --resume to continue it, or change `name` for a new sweep")
        stop = StopPolicy(max_failures if max_failures is not None else spec.search.max_failures)
        planned = planned_trials(spec)
        for pb in planned:  # grid points the planner refused: recorded before anything runs
            for plan in pb.rejected:
                ledger.reject(pb.budget.label, plan)
        live = _progress(spec, planned, ledger, simulate, start_s)
        callback = DriverCallback(ledger=ledger, store=store, tracker=tracker, progress=live, stop=stop,
                                  simulated=simulate)
        with _display(live) if progress else nullcontext(), \
                ray_runtime(spec.cluster.address, local_cpus(spec)), signals_stop(stop.interrupt):
            resources = trial_resources(spec, _gpu_memory_bytes(spec))
            check_resources(spec, resources)
            slots = max_concurrent(spec, resources)
            busy_slots = min(slots, cluster_slots(resources))  # what the efficiency divides by
            trainable = tune.with_resources(_trainable(spec, resources, store, simulate, simulate_trial_s),
                                            _tune_resources(resources, simulate))
            _run_sweep(spec, planned, ledger, store, callback, stop, trainable, slots)
            callback.close()  # the queued MLflow writes, while Ray is still up (see close_while_ray_is_up)
            close_while_ray_is_up()
            if stop.interrupted_by is not None:  # the signal's own KeyboardInterrupt was swallowed somewhere
                raise KeyboardInterrupt(f"signal {stop.interrupted_by}")
            status = "FAILED" if stop.stopped_reason else "FINISHED"
        outcome = SweepOutcome.from_ledger(
            ledger, {b.budget.label: b.budget.flops for b in planned}, name=spec.name, spec_hash=spec.spec_hash(),
            tracking_uri=tracker.uri, storage_dir=store.root, objectives=spec.search.objective_modes,
            simulated=simulate, wall_s=time.time() - start_s, stopped_reason=stop.stopped_reason,
            busy_slot_s=callback.busy_slot_s, slots=busy_slots,
            trials_span_s=callback.trials_span_s)
        return outcome
    except KeyboardInterrupt:
        status = "KILLED"
        if callback is not None:
            callback.mark_running_interrupted("interrupted: the driver was stopped (Ctrl-C or SIGTERM)")
        raise
    finally:
        if callback is not None:
            callback.close()  # the MLflow writes still queued, before the parent run ends
        if tracker is not None:
            _finish_tracking(tracker, status, outcome)
        store.release()


def close_while_ray_is_up() -> None:
    """Collect the experiment's garbage while Ray is connected: a Ray object freed after `ray.shutdown` by a
    collection that happens to run on another thread (the MLflow writer's) makes Ray exit the process."""
    gc.collect()


def _finish_tracking(tracker: SweepTracker, status: str, outcome: SweepOutcome | None) -> None:
    if tracker.parent_run_id is None:  # never started: there is no parent run to end
        return
    try:
        tracker.finish(status)
    except Exception as exc:  # noqa: BLE001 - the launch's own outcome or error matters more
        log.error("tracking: finishing the parent run failed: %s", short_error(exc, tracker.uri))
    if outcome is not None:  # the store went away and has not come back: say so, keep the journal
        outcome.tracking_pending = tracker.pending_writes
        outcome.tracking_journal = tracker.journal.path


def _progress(spec: SweepSpec, planned: list[PlannedBudget], ledger: Ledger, simulated: bool,
              start_s: float) -> SweepProgress:
    """Every budget's plan and earlier results up front, so progress and ETA cover the whole sweep."""
    progress = SweepProgress(spec.name, simulated=simulated, start_s=start_s)
    for pb in planned:
        label = pb.budget.label
        bp = progress.budget(label)
        bp.budget_flops, bp.planned_trials, bp.planned_flops = pb.budget.flops, pb.trials, pb.planned_flops
        bp.rejected = len(ledger.rejected.get(label, {}))
        for trial in ledger.finished_in(label):
            bp.add_finished(trial.result.status, objective_value(trial.result, PRIMARY_OBJECTIVE),
                            trial.result.flops, dict(trial.identity.point))
            bp.resumed += 1
    return progress


def _display(progress: SweepProgress) -> AbstractContextManager[Any]:
    """The live table on an interactive terminal; elsewhere (logs, CI) one plain progress line on stderr
    every COE_SWEEP_PROGRESS_S seconds (default 30), since a redrawn table would flood a log."""
    from rich.live import Live

    from coe_sweep.console import is_terminal, make_console

    if not is_terminal(stderr=True):
        return PlainProgress(lambda: progress_line(progress), _progress_interval_s())
    return Live(get_renderable=lambda: render_progress(progress), console=make_console(stderr=True),
                refresh_per_second=2, transient=False)


def _progress_interval_s() -> float:
    raw = os.environ.get("COE_SWEEP_PROGRESS_S", "")
    try:
        value = float(raw) if raw else PLAIN_PROGRESS_S
    except ValueError:
        value = PLAIN_PROGRESS_S
    return value if value > 0 else PLAIN_PROGRESS_S


def _asha(spec: SweepSpec) -> GroupedASHA | None:
    """ASHA over evaluations (each intermediate report is one `training_iteration`), one per (budget, seed)."""
    asha = spec.search.asha
    if not asha.enabled:
        return None
    interval = max(1, int(spec.train.eval_interval))
    max_evals = (spec.budget.max_steps or 10**6) // interval + 2  # evals at 0?, every interval, the end
    return GroupedASHA(functools.partial(
        ASHAScheduler, time_attr="training_iteration", metric=PRIMARY_OBJECTIVE, mode="min", max_t=int(max_evals),
        grace_period=int(asha.grace_period), reduction_factor=float(asha.reduction_factor)))


def _searcher(spec: SweepSpec, planned: PlannedBudget, ledger: Ledger, store: SweepStore) -> Searcher:
    objectives = spec.search.objective_modes
    if planned.grid is not None:
        return GridSearch(list(planned.grid), ledger, objectives, planned.seeds)
    label = planned.budget.label
    searcher = FeasibleOptunaSearch(spec, planned.budget, ledger, objectives, planned.configs)
    rerun = [dict(identity.point) for key, identity in store.unfinished_starts().items()
             if identity.budget_label == label and key not in ledger.finished]
    searcher.warm_start(ledger.finished_in(label), rerun)
    return searcher


def _run_sweep(spec: SweepSpec, planned: list[PlannedBudget], ledger: Ledger, store: SweepStore,
               callback: DriverCallback, stop: StopPolicy, trainable: Any, slots: int) -> None:
    """The budgets' remaining trials in one Tune experiment (see coe_sweep.sweep.interleave); with
    `cluster.interleave: false`, one experiment per budget, in the spec's order."""
    left = {pb.budget.label: pb.trials - len(ledger.finished_in(pb.budget.label)) for pb in planned}
    if sum(max(0, n) for n in left.values()) <= 0:
        log.info("sweep %s: all %d trials already finished", spec.name, sum(pb.trials for pb in planned))
        return
    groups = [planned] if spec.cluster.interleave else [[pb] for pb in planned]
    for group in groups:
        if stop.stop_requested():
            break
        todo = [pb for pb in group if left[pb.budget.label] > 0]
        if todo:
            _run_experiment(spec, todo, {pb.budget.label: left[pb.budget.label] for pb in todo}, ledger, store,
                            callback, stop, trainable, slots)
    for pb in planned:
        callback.log_rejected(pb.budget.label)


def _run_experiment(spec: SweepSpec, planned: list[PlannedBudget], left: dict[str, int], ledger: Ledger,
                    store: SweepStore, callback: DriverCallback, stop: StopPolicy, trainable: Any,
                    slots: int) -> None:
    """One Tune experiment over `planned`'s budgets, each with its own searcher, `left` trials each."""
    searchers = {pb.budget.label: _searcher(_without_credentials(spec), pb, ledger, store) for pb in planned}
    cost = {pb.budget.label: pb.budget.flops or 1.0 for pb in planned}  # a token budget is the only level
    metric, mode = spec.search.objective_modes[0]
    search = InterleavedSearch(searchers, left, cost, metric, mode)
    prefix = "sweep" if spec.cluster.interleave else planned[0].budget.label
    attempt = len(list(store.tune_dir.glob(f"{prefix}-*")))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(search, max_concurrent=slots),
                                    scheduler=_asha(spec), num_samples=sum(left.values()), reuse_actors=True),
        run_config=tune.RunConfig(name=f"{prefix}-{attempt}", storage_path=str(store.tune_dir),
                                  callbacks=[callback], stop=FailureStopper(stop),
                                  failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES), verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))
    try:
        tuner.fit()
    except OSError as exc:  # Tune's own experiment state on a full (or vanished) sweep directory
        if exc.errno not in STORAGE_ERRNOS:
            raise
        callback.storage_failed("Ray Tune experiment state", exc)


def _gpu_memory_bytes(spec: SweepSpec) -> int | None:
    """One GPU's memory for gpus_per_trial: auto: cluster.gpu_memory, else this machine's first GPU."""
    if spec.cluster.gpus_per_trial != "auto" or spec.cluster.gpu_memory:
        return None
    from runners.device import gpu_memory_bytes

    memory = gpu_memory_bytes()
    if memory is None:
        log.warning("cluster.gpus_per_trial: auto and no GPU on this machine: trials reserve no GPU "
                    "(set cluster.gpu_memory for a cluster whose GPUs this machine does not have)")
    return memory


def _trainable(spec: SweepSpec, resources: TrialResources, store: SweepStore, simulate: bool,
               simulate_trial_s: float) -> Any:
    """The Tune trainable with its constant context: one process per trial, or (data-parallel, real
    training) a trial that runs its workers through Ray Train (coe_sweep.sweep.data_parallel)."""
    objectives = tuple(spec.search.objectives)
    if resources.data_parallel and not simulate:
        return tune.with_parameters(run_data_parallel_trial, workers=resources.workers,
                                    cpus_per_worker=driver_and_worker_cpus(resources.cpus_per_trial,
                                                                           resources.workers)[1],
                                    gpus_per_worker=resources.gpus_per_worker,
                                    storage_path=train_storage(store.tune_dir), objectives=objectives)
    return tune.with_parameters(run_trial, report=tune.report, simulate=simulate, simulate_trial_s=simulate_trial_s,
                                simulate_law=spec.simulate.law_values() if spec.simulate else None,
                                objectives=objectives, intermediate=spec.search.asha.enabled or not simulate)


def _tune_resources(resources: TrialResources, simulate: bool) -> dict[str, float]:
    """What Tune reserves for a trial's own process: all of it, except for a data-parallel trial, whose
    process only waits while its Ray Train workers hold the CPUs and GPUs."""
    if resources.data_parallel and not simulate:
        return {"cpu": driver_and_worker_cpus(resources.cpus_per_trial, resources.workers)[0]}
    return {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}


def _without_credentials(spec: SweepSpec) -> SweepSpec:
    """The spec the searchers keep: Tune pickles them into its experiment state (tuner.pkl), and they never
    write to MLflow (the driver's callback does), so their tracking URI travels without its password."""
    uri = spec.tracking.uri
    if not uri:
        return spec
    return spec.model_copy(update={"tracking": spec.tracking.model_copy(update={"uri": redact_uri(uri)})})
