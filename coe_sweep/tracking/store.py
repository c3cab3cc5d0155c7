"""TrackingStore: the read side of the MLflow layout, for the dashboard, `coe-sweep status` and analysis.

Sweeps are parent runs tagged coe_sweep.kind=sweep (any experiment); trials are their child runs.
`trials_frame` flattens children into one pandas row each, with params parsed back to numbers and
bools, and supports incremental refresh (`updated_after_ms`) for caches of 10,000-trial sweeps.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException

from coe_sweep.tracking import ops
from coe_sweep.tracking.connection import is_transient, make_client, redact_uri, short_error, unavailable
from coe_sweep.tracking.journal import RetryPolicy, call_with_retries
from coe_sweep.tracking.names import (
    FINAL_METRICS,
    KIND_SWEEP,
    KIND_TRIAL,
    PARAM_ARM,
    PARAM_BUDGET_FLOPS,
    PARAM_BUDGET_LABEL,
    PARAM_SEED,
    STEP_METRICS,
    TAG_ARM,
    TAG_BUDGET_LABEL,
    TAG_CONFIG_HASH,
    TAG_FAMILY,
    TAG_KIND,
    TAG_PARENT,
    TAG_REASON,
    TAG_SEED,
    TAG_SIMULATED,
    TAG_SPEC_HASH,
    TAG_SWEEP_NAME,
    TAG_TRIAL_COUNTS,
    TAG_TRIAL_ID,
    parse_param,
    parse_params,
)
from coe_sweep.tracking.ops import trial_status
from coe_sweep.tracking.records import (
    SweepNotFound,
    SweepSummary,
    TrackingError,
    TrialDetail,
    TrialNotFound,
)
from coe_sweep.trial import arm_name, trial_id_of

log = logging.getLogger(__name__)
T = TypeVar("T")

BASE_COLUMNS = ("run_id", "config_hash", "status", "reason", "budget_label", "budget_flops", "family",
                "simulated", "run_status", "arm", "seed", "trial_id")
_BASE_PARAMS = (PARAM_BUDGET_LABEL, PARAM_BUDGET_FLOPS, PARAM_ARM, PARAM_SEED)  # columns of their own
TIME_COLUMNS = ("start_time", "end_time")
_RUN_ID_RE = re.compile(r"[0-9a-f]{32}")
_NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


class TrackingStore:
    """Read-only view of every coe-sweep sweep in one MLflow store."""

    def __init__(self, uri: str, retry: RetryPolicy | None = None) -> None:
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"uri={uri!r} is invalid: expected an MLflow tracking URI (sqlite:///..., http://...)")
        self.uri = uri
        self._client = make_client(uri)
        self._retry = retry or RetryPolicy(attempts=2, initial_backoff_s=0.2)

    # ----- sweeps -----
    def list_sweeps(self) -> list[SweepSummary]:
        """Every sweep, newest first, with trial counts by status."""
        return [self._summary(parent) for parent in self._parents()]

    def sweep(self, sweep: str) -> SweepSummary:
        """One sweep by parent run id or name (the latest parent run of that name)."""
        return self._summary(self._resolve_sweep(sweep))

    def spec_yaml(self, sweep: str) -> str:
        """The spec YAML artifact logged on the sweep's parent run."""
        parent = self._resolve_sweep(sweep)
        return self._call(lambda: self._client.download_artifacts(parent.info.run_id, "spec.yaml"),
                          "download spec.yaml", read_text=True)

    def sweep_metrics(self, sweep: str) -> dict[str, float]:
        """Sweep-level metrics of the parent run (see SweepTracker.log_sweep_metrics)."""
        return dict(self._resolve_sweep(sweep).data.metrics)

    # ----- trials -----
    def trials_frame(self, sweep: str, updated_after_ms: int | None = None) -> pd.DataFrame:
        """One row per trial (child run). With updated_after_ms: only runs started or ended after it, plus
        every run still RUNNING (a cache merges these rows by run_id)."""
        parent = self._resolve_sweep(sweep)
        return frame_from_runs(self._children(parent, updated_after_ms))

    def trial(self, run_id: str) -> TrialDetail:
        """Params, final metrics and loss curves of one trial."""
        run = self._get_run(run_id)
        if run is None or run.data.tags.get(TAG_KIND) != KIND_TRIAL:
            raise TrialNotFound(f"run_id={run_id!r}: no coe-sweep trial run with this id in {redact_uri(self.uri)}")
        curves = {key: self._curve(run_id, key) for key in STEP_METRICS}
        tags = run.data.tags
        return TrialDetail(
            run_id=run_id, sweep_id=tags.get(TAG_PARENT), config_hash=tags.get(TAG_CONFIG_HASH),
            status=trial_status(run), reason=tags.get(TAG_REASON) or None, run_status=run.info.status,
            params=parse_params(run.data.params),
            finals={k: v for k, v in run.data.metrics.items() if k not in STEP_METRICS},
            curves=curves, tags={k: v for k, v in tags.items() if k.startswith("coe_sweep.")},
            start_time=run.info.start_time, end_time=run.info.end_time)

    # ----- internals -----
    def _call(self, fn: Callable[[], T], what: str, read_text: bool = False) -> Any:
        try:
            out = call_with_retries(fn, self._retry, what)
        except Exception as exc:
            if is_transient(exc):
                raise unavailable(self.uri, f"could not {what} ({short_error(exc, self.uri, limit=200)})") from exc
            if isinstance(exc, MlflowException) and exc.error_code not in _NOT_FOUND_CODES:
                raise TrackingError(f"MLflow store {redact_uri(self.uri)!r} refused to {what}: "
                                    f"{short_error(exc, self.uri)}") from exc
            raise
        if read_text:
            with open(str(out), encoding="utf-8") as fh:
                return fh.read()
        return out

    def _experiment_ids(self) -> list[str]:
        def fetch() -> list[str]:
            ids: list[str] = []
            token = None
            while True:
                page = self._client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                                       page_token=token)
                ids += [e.experiment_id for e in page]
                token = page.token
                if not token:
                    return ids
        return self._call(fetch, "list experiments")

    def _parents(self) -> list[Run]:
        ids = self._experiment_ids()
        runs: list[Run] = []
        for i in range(0, len(ids), 100):
            chunk = ids[i:i + 100]
            runs += self._call(functools.partial(ops.search_all, self._client, chunk,
                                                 f"tags.`{TAG_KIND}` = '{KIND_SWEEP}'", ["attributes.start_time DESC"]),
                               "list sweeps")
        runs.sort(key=lambda r: r.info.start_time or 0, reverse=True)
        return runs

    def _get_run(self, run_id: str) -> Run | None:
        if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
            return None
        try:
            return self._call(lambda: self._client.get_run(run_id), "get a run")
        except MlflowException as exc:
            if exc.error_code in _NOT_FOUND_CODES:
                return None
            raise TrackingError(f"MLflow store {redact_uri(self.uri)!r} refused get_run({run_id}): "
                                f"{short_error(exc, self.uri)}") from exc

    def _resolve_sweep(self, sweep: str) -> Run:
        if not isinstance(sweep, str) or not sweep:
            raise SweepNotFound(f"sweep={sweep!r} is invalid: expected a sweep name or parent run id")
        run = self._get_run(sweep)
        if run is not None and run.data.tags.get(TAG_KIND) == KIND_SWEEP and run.info.lifecycle_stage == "active":
            return run
        parents = self._parents()
        named = [p for p in parents if _sweep_name(p) == sweep]
        if named:
            return named[0]  # newest first
        known = sorted({_sweep_name(p) for p in parents})
        raise SweepNotFound(f"sweep={sweep!r}: no sweep with this name or parent run id in {redact_uri(self.uri)}; "
                            f"known sweeps: {', '.join(known) if known else 'none'}")

    def _children(self, parent: Run, updated_after_ms: int | None) -> list[Run]:
        experiment = [parent.info.experiment_id]
        base = ops.children_filter(parent.info.run_id)
        if updated_after_ms is None:
            return self._call(lambda: ops.search_all(self._client, experiment, base), "list trials")
        if isinstance(updated_after_ms, bool) or not isinstance(updated_after_ms, int) or updated_after_ms < 0:
            raise ValueError(f"updated_after_ms={updated_after_ms!r} is invalid: expected epoch milliseconds >= 0")
        by_id: dict[str, Run] = {}
        for extra in (f"attributes.start_time > {updated_after_ms}", f"attributes.end_time > {updated_after_ms}",
                      "attributes.status = 'RUNNING'"):
            for run in self._call(functools.partial(ops.search_all, self._client, experiment, f"{base} and {extra}"),
                                  "list updated trials"):
                by_id[run.info.run_id] = run
        return list(by_id.values())

    def _summary(self, parent: Run) -> SweepSummary:
        """From the parent run alone when its writer keeps the trial counts on it (TAG_TRIAL_COUNTS); sweeps
        written before that tag existed are counted from their children (slow for big sweeps)."""
        counts = trial_counts(parent.data.tags.get(TAG_TRIAL_COUNTS))
        if counts is None:
            counts = {}
            for run in self._children(parent, None):
                status = trial_status(run)
                counts[status] = counts.get(status, 0) + 1
        tags = parent.data.tags
        return SweepSummary(
            id=parent.info.run_id, name=_sweep_name(parent), experiment_id=parent.info.experiment_id,
            status=parent.info.status, spec_hash=tags.get(TAG_SPEC_HASH),
            simulated=tags.get(TAG_SIMULATED) == "true", n_trials=sum(counts.values()), counts=counts,
            start_time=parent.info.start_time, end_time=parent.info.end_time)

    def _curve(self, run_id: str, key: str) -> list[tuple[int, float]]:
        history = self._call(lambda: self._client.get_metric_history(run_id, key), "read a metric history")
        points: dict[int, tuple[int, float]] = {}
        for m in sorted(history, key=lambda m: (m.step, m.timestamp)):
            points.setdefault(m.step, (m.step, m.value))
        return list(points.values())


def trial_counts(text: str | None) -> dict[str, int] | None:
    """The parent run's TAG_TRIAL_COUNTS ({status: count} as JSON), or None when absent or unreadable."""
    if not text:
        return None
    try:
        counts = json.loads(text)
    except ValueError:
        return None
    if not isinstance(counts, dict) or not all(isinstance(k, str) and type(v) is int and v >= 0
                                               for k, v in counts.items()):
        return None
    return {k: v for k, v in counts.items() if v}


def _sweep_name(run: Run) -> str:
    return run.data.tags.get(TAG_SWEEP_NAME) or run.info.run_name or run.info.run_id


def frame_from_runs(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per child run, oldest first: base columns, every metric, every param (typed), start/end times."""
    cache: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    runs = sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))  # trial order, stable
    metric_keys: dict[str, None] = dict.fromkeys(FINAL_METRICS)
    param_keys: dict[str, None] = {}
    for run in runs:
        tags, params = run.data.tags, run.data.params
        config_hash = tags.get(TAG_CONFIG_HASH)
        seed = _seed_of(tags, params)
        row: dict[str, Any] = {
            "run_id": run.info.run_id, "config_hash": config_hash, "seed": seed,
            "trial_id": tags.get(TAG_TRIAL_ID) or (trial_id_of(config_hash, seed) if config_hash else None),
            "arm": tags.get(TAG_ARM) or params.get(PARAM_ARM) or _derived_arm(params), "status": trial_status(run),
            "reason": tags.get(TAG_REASON) or None,
            "budget_label": tags.get(TAG_BUDGET_LABEL) or params.get(PARAM_BUDGET_LABEL),
            "budget_flops": _parse_cached(params.get(PARAM_BUDGET_FLOPS), cache),
            "family": tags.get(TAG_FAMILY), "simulated": tags.get(TAG_SIMULATED) == "true",
            "run_status": run.info.status, "start_time": run.info.start_time, "end_time": run.info.end_time,
        }
        row.update(run.data.metrics)
        metric_keys.update(dict.fromkeys(run.data.metrics))
        for key, text in params.items():
            if key not in _BASE_PARAMS:
                row[key] = _parse_cached(text, cache)
                param_keys[key] = None
        rows.append(row)
    metrics = [k for k in metric_keys if k not in BASE_COLUMNS]
    params_sorted = sorted(k for k in param_keys if k not in metric_keys and k not in BASE_COLUMNS)
    columns = [*BASE_COLUMNS, *metrics, *params_sorted, *TIME_COLUMNS]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for key in metrics:
        frame[key] = pd.to_numeric(frame[key], errors="coerce").astype("float64")
    frame["budget_flops"] = pd.to_numeric(frame["budget_flops"], errors="coerce").astype("float64")
    frame["simulated"] = frame["simulated"].astype(bool)
    frame["seed"] = frame["seed"].astype("int64")
    for key in params_sorted:
        frame[key] = _typed(frame[key])
    for key in TIME_COLUMNS:
        frame[key] = frame[key].astype("Int64")
    return frame


def _seed_of(tags: dict[str, str], params: dict[str, str]) -> int:
    """The seed tag; runs logged before seeds were tagged: their train.seed param (0 without one)."""
    text = tags.get(TAG_SEED) or params.get(PARAM_SEED) or params.get("train.seed") or "0"
    return int(text) if text.lstrip("-").isdigit() else 0


def _parse_cached(text: str | None, cache: dict[str, Any]) -> Any:
    if text is None:
        return None
    if text not in cache:
        cache[text] = parse_param(text)
    return cache[text]


def _typed(column: pd.Series) -> pd.Series:
    """bool / Int64 / float64 when every present value has that type; object (strings, mixed) otherwise."""
    present = column.dropna()
    kinds = {type(v) for v in present}
    has_missing = len(present) < len(column)
    if kinds == {bool}:
        return column.astype("boolean" if has_missing else bool)
    if kinds == {int}:
        return column.astype("Int64" if has_missing else "int64")
    if kinds and kinds <= {int, float}:
        return pd.to_numeric(column, errors="coerce").astype("float64")
    return column.astype(object).where(column.notna(), None)


def _derived_arm(params: Mapping[str, str]) -> str | None:
    """The arm of a run that names none (written before arms, or by hand): derived from its architecture
    params by the rule the planner uses (coe_sweep.trial.arm_name); None without them."""
    iterations = params.get("model.iterations")
    if iterations is None or not iterations.strip().isdigit():
        return None
    return arm_name(int(iterations), params.get("model.dense") in ("True", "true"))
