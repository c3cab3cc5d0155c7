"""Applying one write op to an MLflow store: the code shared by direct writes and journal replay.

An op is a JSON-able dict (see coe_sweep.tracking.journal). Every op is idempotent:
- `create_trial`: find the child run by (parent run id, config hash, seed) tags, create it only if absent,
  log the params it lacks, and set it RUNNING again if it had ended (a restarted trial);
- `log_batch`: metrics as [key, value, timestamp_ms, step] (MLflow drops exact duplicates), tags;
- `set_terminated`: run status FINISHED | FAILED | KILLED, end time = when it is applied;
- `log_text`: an artifact file (overwritten with the same text).
A run may be named by a *pending ref* ("pending:<experiment>:<parent run>:<config hash>:<seed>") when
its create_trial op was journaled; the ref resolves by the same find-or-create key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.tracking import MlflowClient

from coe_sweep.tracking.names import TAG_CONFIG_HASH, TAG_PARENT, TAG_SEED, TAG_STATUS

log = logging.getLogger(__name__)

PENDING_PREFIX = "pending:"
MAX_METRICS_PER_CALL = 1000  # MLflow's log_batch limits
MAX_PARAMS_TAGS_PER_CALL = 100
PAGE_SIZE = 50_000  # MLflow's search_runs maximum


_MLFLOW_TO_TRIAL_STATUS = {"RUNNING": "running", "SCHEDULED": "running", "KILLED": "killed",
                           "FAILED": "failed", "FINISHED": "finished"}


def trial_status(run: Run) -> str:
    """running while the run runs (a restarted trial's old result tag is stale); then ok | diverged | oom |
    failed from the trial's own tag, else killed | failed | finished from the MLflow status."""
    mlflow_status = run.info.status
    if mlflow_status in ("RUNNING", "SCHEDULED"):
        return "running"
    return run.data.tags.get(TAG_STATUS) or _MLFLOW_TO_TRIAL_STATUS.get(mlflow_status, mlflow_status.lower())


@dataclass(frozen=True)
class CreatedTrial:
    run_id: str
    reused: bool  # True when the child already existed (a resumed or restarted trial)


def pending_ref(experiment_id: str, parent_run_id: str, config_hash: str, seed: int = 0) -> str:
    return f"{PENDING_PREFIX}{experiment_id}:{parent_run_id}:{config_hash}:{seed}"


def is_pending(run: str) -> bool:
    return run.startswith(PENDING_PREFIX)


def search_all(client: MlflowClient, experiment_ids: list[str], filter_string: str,
               order_by: list[str] | None = None) -> list[Run]:
    """Every run matching the filter, paged at MLflow's maximum page size."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=PAGE_SIZE,
                                  order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def children_filter(parent_run_id: str, config_hash: str | None = None, seed: int | None = None) -> str:
    text = f"tags.`{TAG_PARENT}` = '{parent_run_id}'"
    if config_hash is not None:
        text += f" and tags.`{TAG_CONFIG_HASH}` = '{config_hash}'"
    if seed is not None:
        text += f" and tags.`{TAG_SEED}` = '{int(seed)}'"
    return text


def find_child(client: MlflowClient, experiment_id: str, parent_run_id: str, config_hash: str,
               seed: int = 0) -> Run | None:
    runs = client.search_runs([experiment_id], filter_string=children_filter(parent_run_id, config_hash, seed),
                              order_by=["attributes.start_time ASC"], max_results=10)
    if len(runs) > 1:
        log.warning("tracking: %d child runs carry config hash %s seed %d under %s; using the oldest %s",
                    len(runs), config_hash, seed, parent_run_id, runs[0].info.run_id)
    return runs[0] if runs else None


def create_trial(client: MlflowClient, op: dict[str, Any]) -> CreatedTrial:
    run = find_child(client, op["experiment_id"], op["parent_run_id"], op["config_hash"], int(op.get("seed", 0)))
    params: dict[str, str] = op["params"]
    if run is None:
        created = client.create_run(op["experiment_id"], tags=op["tags"], run_name=op["run_name"])
        log_batch(client, created.info.run_id, params=params)
        return CreatedTrial(created.info.run_id, reused=False)
    run_id = run.info.run_id
    existing = run.data.params
    changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
    if changed:
        log.warning("tracking: run %s (config %s) keeps its logged params %s; new values differ and are "
                    "not logged (params are logged once)", run_id, op["config_hash"], ", ".join(changed))
    log_batch(client, run_id, params={k: v for k, v in params.items() if k not in existing})
    if run.info.status != "RUNNING":
        client.update_run(run_id, status="RUNNING")
    return CreatedTrial(run_id, reused=True)


def resolve(client: MlflowClient, run: str, resolved: dict[str, str]) -> str:
    """Real run id for a run id or pending ref (cached in `resolved`)."""
    if not is_pending(run):
        return run
    if run in resolved:
        return resolved[run]
    experiment_id, parent_run_id, config_hash, seed = run[len(PENDING_PREFIX):].split(":", 3)
    child = find_child(client, experiment_id, parent_run_id, config_hash, int(seed))
    if child is None:
        raise MlflowException(f"no child run with config hash {config_hash} under parent {parent_run_id} "
                              "(its create_trial op was refused)", error_code=RESOURCE_DOES_NOT_EXIST)
    resolved[run] = child.info.run_id
    return child.info.run_id


def log_batch(client: MlflowClient, run_id: str, metrics: list[list[Any]] | None = None,
              params: dict[str, str] | None = None, tags: dict[str, str] | None = None) -> None:
    """log_batch split to MLflow's per-call limits; metrics are [key, value, timestamp_ms, step]."""
    metric_objs = [Metric(str(k), float(v), int(ts), int(step)) for k, v, ts, step in (metrics or [])]
    param_objs = [Param(k, v) for k, v in (params or {}).items()]
    tag_objs = [RunTag(k, v) for k, v in (tags or {}).items()]
    if not (metric_objs or param_objs or tag_objs):
        return
    if (len(metric_objs) <= MAX_METRICS_PER_CALL - 2 * MAX_PARAMS_TAGS_PER_CALL
            and len(param_objs) <= MAX_PARAMS_TAGS_PER_CALL and len(tag_objs) <= MAX_PARAMS_TAGS_PER_CALL):
        client.log_batch(run_id, metrics=metric_objs, params=param_objs, tags=tag_objs)
        return
    for i in range(0, len(param_objs), MAX_PARAMS_TAGS_PER_CALL):
        client.log_batch(run_id, params=param_objs[i:i + MAX_PARAMS_TAGS_PER_CALL])
    for i in range(0, len(tag_objs), MAX_PARAMS_TAGS_PER_CALL):
        client.log_batch(run_id, tags=tag_objs[i:i + MAX_PARAMS_TAGS_PER_CALL])
    for i in range(0, len(metric_objs), MAX_METRICS_PER_CALL):
        client.log_batch(run_id, metrics=metric_objs[i:i + MAX_METRICS_PER_CALL])


def apply_op(client: MlflowClient, op: dict[str, Any], resolved: dict[str, str]) -> CreatedTrial | None:
    kind = op.get("op")
    if kind == "create_trial":
        created = create_trial(client, op)
        resolved[pending_ref(op["experiment_id"], op["parent_run_id"], op["config_hash"],
                             int(op.get("seed", 0)))] = created.run_id
        return created
    if kind not in ("log_batch", "set_terminated", "log_text"):
        raise ValueError(f"tracking op {kind!r} is invalid: expected create_trial, log_batch, set_terminated "
                         "or log_text")
    run_id = resolve(client, op["run"], resolved)
    if kind == "log_batch":
        log_batch(client, run_id, metrics=op.get("metrics"), tags=op.get("tags"))
    elif kind == "set_terminated":
        client.set_terminated(run_id, status=op["status"])
    else:
        client.log_text(run_id, op["text"], op["path"])
    return None
