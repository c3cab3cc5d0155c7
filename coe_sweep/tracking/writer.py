"""SweepTracker: the driver-side writer of one sweep's MLflow layout (DESIGN.md "MLflow layout").

One experiment per sweep name; one parent run per (spec hash, simulated) with the spec YAML as an
artifact; one child run per trial keyed by (config hash, seed) (found-or-created, never duplicated), named by its trial id;
params once; step curves train_loss/val_loss; final metrics; status FINISHED or FAILED + reason.
Uses MlflowClient with explicit run ids (no fluent active-run state), under one lock.

Writes are durable: each goes through coe_sweep.tracking.journal (retry with backoff, then a local
journal replayed in order by flush(), by later writes once the store answers, and by the next
start()). While the store is down, start_trial returns a pending ref that every method accepts.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from coe_sweep.tracking import ops
from coe_sweep.tracking.connection import (
    check_reachable,
    is_transient,
    make_client,
    redact,
    redact_uri,
    scheme_of,
    short_error,
    sqlite_path,
    unavailable,
)
from coe_sweep.tracking.journal import Journal, Op, RetryPolicy, call_with_retries
from coe_sweep.tracking.names import (
    EXPERIMENT_KIND_TRAINING,
    KIND_SWEEP,
    KIND_TRIAL,
    MAX_TAG_VALUE_CHARS,
    PARAM_BUDGET_LABEL,
    RESULT_ARTIFACT,
    RESULT_TO_METRIC,
    ROUTING_PREFIX,
    RUN_STATUS_OF,
    RUN_STATUSES,
    SIMULATED_MIXED,
    SPEC_ARTIFACT,
    TAG_ARM,
    TAG_BUDGET_LABEL,
    TAG_CONFIG_HASH,
    TAG_DEVICE,
    TAG_EXPERIMENT_KIND,
    TAG_FAMILY,
    TAG_KIND,
    TAG_PARENT,
    TAG_REASON,
    TAG_SEED,
    TAG_SIMULATED,
    TAG_SPEC_HASH,
    TAG_STATUS,
    TAG_SWEEP_NAME,
    TAG_TRIAL_COUNTS,
    TAG_TRIAL_ID,
    Scalar,
    bool_tag,
    family_of,
    metric_value,
    params_to_str,
    parse_params,
)
from coe_sweep.tracking.ops import trial_status
from coe_sweep.tracking.records import TrackingError, TrialRecord
from coe_sweep.trial import RESULT_STATUSES, RunResult, TrialStatus, trial_id_of

log = logging.getLogger(__name__)
TrialKey = tuple[str, int]  # (config hash, seed)

_KEY_RE = re.compile(r"[A-Za-z0-9_.\-]+")
DEFAULT_JOURNAL_ROOT = Path.home() / ".cache" / "coe-sweep" / "tracking-journal"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_key(field: str, value: str) -> str:
    if not isinstance(value, str) or not _KEY_RE.fullmatch(value):
        raise ValueError(f"{field}={value!r} is invalid: expected a non-empty string of letters, digits, _ . -")
    return value


class SweepTracker:
    """Writes one sweep to MLflow. Call check_reachable(), start(), then the trial methods, then finish()."""

    def __init__(self, uri: str, sweep_name: str, spec_yaml: str, spec_hash: str, *,
                 journal_dir: Path | str | None = None, experiment: str | None = None,
                 simulated: bool = False, retry: RetryPolicy | None = None,
                 parent_tags: Mapping[str, str] | None = None) -> None:
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"uri={uri!r} is invalid: expected an MLflow tracking URI (sqlite:///..., http://...)")
        if not isinstance(sweep_name, str) or not sweep_name.strip():
            raise ValueError(f"sweep_name={sweep_name!r} is invalid: expected a non-empty string")
        self.uri = uri
        self.sweep_name = sweep_name
        self.experiment_name = experiment or sweep_name
        self.spec_yaml = redact(spec_yaml, uri)  # stored on the parent run: everything but the credential
        self.spec_hash = _check_key("spec_hash", spec_hash)
        self.simulated = bool(simulated)
        self.parent_tags = {_check_key("tag", str(k)): str(v) for k, v in (parent_tags or {}).items()}
        self.retry = retry or RetryPolicy()
        suffix = "-simulated" if simulated else ""
        self.journal = Journal(journal_dir or DEFAULT_JOURNAL_ROOT / f"{spec_hash[:32]}{suffix}")
        self._client = make_client(uri)
        self._lock = threading.RLock()
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._children: dict[TrialKey, str] = {}  # (config hash, seed) -> run id
        self._handles: dict[str, TrialKey] = {}  # run id or pending ref handed out -> (config hash, seed)
        self._resolved: dict[str, str] = {}  # pending ref -> run id
        self._logged: dict[TrialKey, dict[str, set[int]]] = {}  # trial -> metric key -> steps logged
        # trial -> its status, counted onto the parent run (TAG_TRIAL_COUNTS) whenever one changes;
        # complete once every existing child is known: a new parent run, or after listing the children
        self._statuses: dict[TrialKey, str] = {}
        self._statuses_complete = False
        self._backlog = len(self.journal)
        self._next_drain_s = 0.0

    # ----- lifecycle -----
    def check_reachable(self, timeout_s: float = 5.0) -> None:
        """Raise TrackingUnavailable (naming the URI) within about timeout_s if the store cannot be used."""
        check_reachable(self.uri, timeout_s)

    def start(self) -> str:
        """Find-or-create the experiment and the parent run (resumed by spec hash); replay the journal."""
        with self._lock:
            self.experiment_id = self._call(self._ensure_experiment, "create the experiment")
            self.parent_run_id = self._call(self._ensure_parent, "create the sweep run")
            self._call(self._ensure_spec_artifact, "log the spec artifact")
            remaining = self.flush()
            if remaining:
                log.warning("tracking: %d journaled writes could not be replayed yet (%s)", remaining,
                            self.journal.path)
            return self.parent_run_id

    def finish(self, status: str = "FINISHED") -> None:
        """End the parent run (FINISHED | FAILED | KILLED) after draining the journal."""
        status_up = str(status).upper()
        if status_up not in RUN_STATUSES:
            raise ValueError(f"status={status!r} is invalid: expected one of {', '.join(RUN_STATUSES)}")
        with self._lock:
            parent = self._require_started()
            self.flush()
            self._write({"op": "set_terminated", "run": parent, "status": status_up})
            if self._backlog:
                log.warning("tracking: %d writes remain in the journal %s; they are replayed by flush() or "
                            "the next launch of this sweep", self._backlog, self.journal.path)

    @property
    def pending_writes(self) -> int:
        """Writes journaled locally and not yet in the store."""
        return self._backlog

    def flush(self) -> int:
        """Replay the journal in order with the full retry policy; returns how many writes remain."""
        with self._lock:
            return self._drain(self.retry)

    # ----- trials -----
    def finished_trials(self) -> dict[TrialKey, TrialRecord]:
        """Child runs that ended with a result: a coe_sweep.status tag on a FINISHED, FAILED or KILLED (pruned)
        run. A KILLED run without it was interrupted by a sweep stop, and is not finished."""
        with self._lock:
            parent = self._require_started()
            experiment_id = self.experiment_id
            assert experiment_id is not None
            runs = self._call(lambda: ops.search_all(self._client, [experiment_id], ops.children_filter(parent),
                                                     ["attributes.start_time ASC"]), "list trials")
            records: dict[TrialKey, TrialRecord] = {}
            for run in runs:
                config = run.data.tags.get(TAG_CONFIG_HASH)
                if config is None:
                    continue
                key = (config, int(run.data.tags.get(TAG_SEED) or 0))
                self._children.setdefault(key, run.info.run_id)
                self._statuses.setdefault(key, trial_status(run))
                status = run.data.tags.get(TAG_STATUS)
                if run.info.status in RUN_STATUSES and status and key not in records:  # KILLED: pruned
                    params = parse_params(run.data.params)
                    records[key] = TrialRecord(
                        run_id=run.info.run_id, config_hash=config, seed=key[1], arm=run.data.tags.get(TAG_ARM),
                        status=status,
                        reason=run.data.tags.get(TAG_REASON) or None, run_status=run.info.status,
                        metrics=dict(run.data.metrics), params=params,
                        budget_label=run.data.tags.get(TAG_BUDGET_LABEL, _opt_str(params.get(PARAM_BUDGET_LABEL))))
            if not self._statuses_complete:
                self._statuses_complete = True
                self._write_counts()
            return records

    def start_trial(self, config_hash: str, params: Mapping[str, Scalar],
                    tags: Mapping[str, Any] | None = None, *, seed: int = 0) -> str:
        """Find-or-create the child run of this (config hash, seed); returns its run id (or a pending ref).
        The run is named by the trial id (coe_sweep.trial.trial_id_of) and tagged with hash, seed and id."""
        _check_key("config_hash", config_hash)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} is invalid: expected an integer >= 0")
        params_str = params_to_str(params)
        user_tags = {_check_key("tag", str(k)): str(v) for k, v in (tags or {}).items()}
        for key, value in user_tags.items():
            if len(value) > MAX_TAG_VALUE_CHARS:
                raise ValueError(f"tag {key} has a {len(value)}-character value: expected at most {MAX_TAG_VALUE_CHARS}")
        with self._lock:
            parent = self._require_started()
            assert self.experiment_id is not None
            budget_label = user_tags.get(TAG_BUDGET_LABEL) or _opt_str(params.get(PARAM_BUDGET_LABEL))
            run_tags = {TAG_FAMILY: family_of(params)} | ({TAG_BUDGET_LABEL: budget_label} if budget_label else {})
            run_tags |= user_tags | {
                TAG_PARENT: parent, TAG_KIND: KIND_TRIAL, TAG_CONFIG_HASH: config_hash, TAG_SEED: str(seed),
                TAG_TRIAL_ID: trial_id_of(config_hash, seed),
                TAG_SPEC_HASH: self.spec_hash, TAG_SWEEP_NAME: self.sweep_name,
                TAG_SIMULATED: user_tags.get(TAG_SIMULATED, bool_tag(self.simulated)),
            }
            op: Op = {"op": "create_trial", "experiment_id": self.experiment_id, "parent_run_id": parent,
                      "config_hash": config_hash, "seed": seed, "params": params_str, "tags": run_tags,
                      "run_name": trial_id_of(config_hash, seed)}
            self._write(op)
            ref = ops.pending_ref(self.experiment_id, parent, config_hash, seed)
            run_id = self._resolved.get(ref, ref)
            self._handles[run_id] = (config_hash, seed)
            self._set_status((config_hash, seed), "running")
            return run_id

    def log_progress(self, run_id: str, step: int, metrics: Mapping[str, Any]) -> None:
        """Step metrics (train_loss, val_loss, ...) at `step`; a (key, step) already logged is skipped."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step={step!r} is invalid: expected an integer >= 0")
        values = {k: metric_value(k, v) for k, v in metrics.items() if v is not None and k != "step"}
        with self._lock:
            ts = _now_ms()
            points = [[k, v, ts, step] for k, v in values.items() if self._claim(run_id, k, step)]
            if points:
                self._write({"op": "log_batch", "run": run_id, "metrics": points})

    def log_result(self, run_id: str, result: RunResult) -> None:
        """Curves by step (points not logged yet), final metrics, status tags, result.json, run status."""
        status = getattr(result, "status", None)
        if not isinstance(status, TrialStatus) or not status.is_result:
            raise ValueError(f"result.status={status!r} is invalid: expected one of "
                             f"{', '.join(s.value for s in RESULT_STATUSES)}")
        with self._lock:
            ts = _now_ms()
            points: list[list[Any]] = []
            for key, curve in (("train_loss", result.train_curve), ("val_loss", result.val_curve)):
                points += [[key, float(v), ts, int(s)] for s, v in curve if self._claim(run_id, key, int(s))]
            for attr, key in RESULT_TO_METRIC.items():
                value = getattr(result, attr, None)
                if value is not None:
                    points.append([key, metric_value(key, value), ts, 0])
            points += [[k, v, ts, 0] for k, v in _routing_metrics(result.routing).items()]
            tags = {TAG_STATUS: status.value, TAG_SIMULATED: bool_tag(result.simulated), TAG_DEVICE: result.device,
                    TAG_REASON: (result.reason or "")[:MAX_TAG_VALUE_CHARS]}
            self._write({"op": "log_batch", "run": run_id, "metrics": points, "tags": tags})
            text = json.dumps(result.to_dict(), indent=1, default=str, allow_nan=True)
            self._write({"op": "log_text", "run": run_id, "text": text, "path": RESULT_ARTIFACT})
            self._write({"op": "set_terminated", "run": run_id, "status": RUN_STATUS_OF.get(status, "FAILED")})
            self._set_status(self._handles.get(run_id, (run_id, 0)), status)

    def log_sweep_metrics(self, metrics: Mapping[str, float]) -> None:
        """Sweep-level figures on the parent run, latest value wins (e.g. `rejected.<budget>`: candidates
        refused before training, which have no child run)."""
        with self._lock:
            parent = self._require_started()
            ts = _now_ms()
            self._write({"op": "log_batch", "run": parent,
                         "metrics": [[_check_key("metric", k), float(v), ts, 0] for k, v in metrics.items()]})

    def mark_interrupted(self, run_id: str, reason: str) -> None:
        """A trial the sweep stopped (not its own fault): KILLED with the reason; not a finished trial, so a
        relaunch runs it again (into this same child run)."""
        with self._lock:
            self._write({"op": "log_batch", "run": run_id, "metrics": [],
                         "tags": {TAG_REASON: reason[:MAX_TAG_VALUE_CHARS]}})
            self._write({"op": "set_terminated", "run": run_id, "status": "KILLED"})
            self._set_status(self._handles.get(run_id, (run_id, 0)), "killed")

    # ----- internals -----
    def _set_status(self, key: TrialKey, status: str) -> None:
        """Record a trial's new status and keep the parent run's counts current (one tag write)."""
        if self._statuses.get(key) == status:
            return
        self._statuses[key] = status
        if not self._statuses_complete:  # a resumed parent whose children were not listed yet
            if self._backlog:  # the store is down: list them (and write the counts) once it is back
                return
            try:
                self.finished_trials()  # lists them, then writes the counts
            except TrackingError as exc:  # store down: the counts follow once it is back
                log.debug("tracking: trial counts deferred (%s)", exc)
            return
        self._write_counts()

    def _write_counts(self) -> None:
        counts: dict[str, int] = {}
        for status in self._statuses.values():
            counts[status] = counts.get(status, 0) + 1
        self._write({"op": "log_batch", "run": self._require_started(), "metrics": [],
                     "tags": {TAG_TRIAL_COUNTS: json.dumps(dict(sorted(counts.items())), separators=(",", ":"))}})

    def _require_started(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("SweepTracker.start() must be called before writing trials")
        return self.parent_run_id

    def _call(self, fn: Any, what: str) -> Any:
        """A store call that must succeed now (start-up, reads): retried, then TrackingUnavailable."""
        try:
            return call_with_retries(fn, self.retry, what)
        except Exception as exc:
            if is_transient(exc):
                raise unavailable(self.uri, f"could not {what} ({short_error(exc, self.uri, limit=200)})") from exc
            raise TrackingError(f"MLflow store {redact_uri(self.uri)!r} refused to {what}: "
                                f"{short_error(exc, self.uri)}") from exc

    def _ensure_experiment(self) -> str:
        experiment = self._client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                return self._client.create_experiment(self.experiment_name,
                                                      artifact_location=self._artifact_location(),
                                                      tags={TAG_KIND: KIND_SWEEP, **self._experiment_tags({})})
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = self._client.get_experiment_by_name(self.experiment_name)
                assert experiment is not None
        if experiment.lifecycle_stage != "active":
            raise TrackingError(
                f"experiment {self.experiment_name!r} in {redact_uri(self.uri)} is deleted: restore it "
                "(`mlflow experiments restore --experiment-id "
                f"{experiment.experiment_id}`) or purge it (`mlflow gc`) before launching this sweep")
        for key, value in self._experiment_tags(dict(experiment.tags or {})).items():
            self._client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id

    def _experiment_tags(self, have: Mapping[str, str]) -> dict[str, str]:
        """Experiment tags to set: MLflow 3's kind (model training, not GenAI) and whether its sweeps are
        simulated ("mixed" once it holds both); only those that differ from `have`."""
        want = {TAG_EXPERIMENT_KIND: have.get(TAG_EXPERIMENT_KIND) or EXPERIMENT_KIND_TRAINING}
        simulated = bool_tag(self.simulated)
        previous = have.get(TAG_SIMULATED)
        want[TAG_SIMULATED] = simulated if previous in (None, simulated) else SIMULATED_MIXED
        return {k: v for k, v in want.items() if have.get(k) != v}

    def _artifact_location(self) -> str | None:
        """Beside the sqlite file (MLflow's default, ./mlruns, would depend on the working directory)."""
        if scheme_of(self.uri) != "sqlite":
            return None
        path = sqlite_path(self.uri)
        if path is None:
            return None
        safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", self.experiment_name)
        return (path.resolve().parent / "mlartifacts" / safe).as_uri()

    def _ensure_parent(self) -> str:
        assert self.experiment_id is not None
        found = self._client.search_runs(
            [self.experiment_id],
            filter_string=(f"tags.`{TAG_KIND}` = '{KIND_SWEEP}' and tags.`{TAG_SPEC_HASH}` = '{self.spec_hash}' "
                           f"and tags.`{TAG_SIMULATED}` = '{bool_tag(self.simulated)}'"),
            order_by=["attributes.start_time DESC"], max_results=1)
        if found:
            run = found[0]
            if run.info.status != "RUNNING":
                self._client.update_run(run.info.run_id, status="RUNNING")
            log.info("tracking: resuming sweep run %s (spec %s)", run.info.run_id, self.spec_hash)
            return run.info.run_id
        self._statuses_complete = True  # a new sweep: no children yet
        created = self._client.create_run(
            self.experiment_id, run_name=self.sweep_name,
            tags={**self.parent_tags, TAG_KIND: KIND_SWEEP, TAG_SPEC_HASH: self.spec_hash,
                  TAG_SWEEP_NAME: self.sweep_name, TAG_SIMULATED: bool_tag(self.simulated)})
        return created.info.run_id

    def _ensure_spec_artifact(self) -> None:
        assert self.parent_run_id is not None
        if not any(f.path == SPEC_ARTIFACT for f in self._client.list_artifacts(self.parent_run_id)):
            self._client.log_text(self.parent_run_id, self.spec_yaml, SPEC_ARTIFACT)

    def _claim(self, run_id: str, key: str, step: int) -> bool:
        """True (and remembered) if (key, step) is not logged yet for this trial."""
        steps = self._logged.setdefault(self._handles.get(run_id, (run_id, -1)), {}).setdefault(key, set())
        if step in steps:
            return False
        steps.add(step)
        return True

    def _apply(self, op: Op) -> None:
        created = ops.apply_op(self._client, op, self._resolved)
        if created is not None:
            trial = (op["config_hash"], int(op.get("seed", 0)))
            self._children[trial] = created.run_id
            if created.reused and trial not in self._logged:
                self._seed_logged(trial, created.run_id)

    def _seed_logged(self, trial: TrialKey, run_id: str) -> None:
        """Steps a previous attempt of this trial already logged, so they are not logged twice."""
        logged = self._logged.setdefault(trial, {})
        for key in ("train_loss", "val_loss"):
            logged.setdefault(key, set()).update(m.step for m in self._client.get_metric_history(run_id, key))

    def _write(self, op: Op) -> None:
        """Apply now (with retries) or, while the store is unreachable, journal it in order."""
        if self._backlog:
            self.journal.append(op)
            self._backlog += 1
            if time.monotonic() >= self._next_drain_s:
                self._drain(RetryPolicy(attempts=1, reconnect_interval_s=self.retry.reconnect_interval_s))
            return
        try:
            call_with_retries(lambda: self._apply(op), self.retry, f"tracking {op['op']}")
        except Exception as exc:
            if not is_transient(exc):
                raise TrackingError(f"MLflow store {redact_uri(self.uri)!r} refused {op['op']}: "
                                    f"{short_error(exc, self.uri)}") from exc
            log.warning("tracking: MLflow store %s unreachable (%s); journaling writes to %s",
                        redact_uri(self.uri), short_error(exc, self.uri, limit=200), self.journal.path)
            self.journal.append(op)
            self._backlog += 1
            self._next_drain_s = time.monotonic() + self.retry.reconnect_interval_s

    def _drain(self, policy: RetryPolicy) -> int:
        entries = self.journal.entries()
        if not entries:
            self._backlog = 0
            return 0
        for position, (index, op) in enumerate(entries):
            try:
                call_with_retries(functools.partial(self._apply, op), policy, f"replay {op.get('op')}")
            except Exception as exc:
                if is_transient(exc):
                    self._next_drain_s = time.monotonic() + policy.reconnect_interval_s
                    self._backlog = len(entries) - position
                    return self._backlog
                self.journal.reject(op, RuntimeError(redact(str(exc), self.uri)))
            self.journal.mark_applied(index + 1)
        self.journal.clear()
        log.info("tracking: replayed %d journaled writes into %s", len(entries), redact_uri(self.uri))
        self._backlog = 0
        return 0


def _opt_str(value: Scalar) -> str | None:
    return None if value is None else str(value)


def _routing_metrics(routing: Mapping[str, Any], prefix: str = ROUTING_PREFIX) -> dict[str, float]:
    """Numeric scalars of the routing summary (nested dicts flattened with dots) as final metrics."""
    out: dict[str, float] = {}
    for key, value in routing.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= _routing_metrics(value, name + ".")
        elif isinstance(value, int | float) and not isinstance(value, bool) and _KEY_RE.fullmatch(name):
            out[name] = float(value)
    return out

