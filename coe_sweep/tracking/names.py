"""Names in MLflow (tags, metrics, params) and the (de)serialisation of param values.

The one place that spells the MLflow layout of DESIGN.md: the writer and the reader both import
these names, so a renamed tag cannot split them. Torch-free and mlflow-free. Statuses and objectives are
coe_sweep.trial's (TrialStatus, OBJECTIVES).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from coe_sweep.trial import OBJECTIVES, TrialStatus

# --- tags ---
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
TAG_KIND = "coe_sweep.kind"  # sweep | trial
TAG_CONFIG_HASH = "coe_sweep.config_hash"  # with the seed, the trial's key (coe_sweep.trial.TrialIdentity)
TAG_SEED = "coe_sweep.seed"
TAG_TRIAL_ID = "coe_sweep.trial_id"  # <config hash[:8]>-s<seed>, also the run name
TAG_ARM = "coe_sweep.arm"
TAG_SPEC_HASH = "coe_sweep.spec_hash"
TAG_SWEEP_NAME = "coe_sweep.sweep_name"
TAG_STATUS = "coe_sweep.status"  # a coe_sweep.trial.TrialStatus result value
TAG_REASON = "coe_sweep.reason"
TAG_BUDGET_LABEL = "coe_sweep.budget_label"
TAG_FAMILY = "coe_sweep.family"  # moe | coe | dense
TAG_SIMULATED = "coe_sweep.simulated"  # "true" | "false"
TAG_DEVICE = "coe_sweep.device"
TAG_IMPORTED = "coe_sweep.imported"  # "true" on a sweep (and its trials) written by `coe-sweep import`
TAG_ARM = "coe_sweep.arm"
TAG_SEED = "coe_sweep.seed"
TAG_TRIAL_ID = "coe_sweep.trial_id"
# On the parent run: JSON {trial status: count} kept current by the writer, so that listing sweeps reads
# parent runs only (statuses as store.trial_status reports them: running, ok, ..., killed).
TAG_TRIAL_COUNTS = "coe_sweep.trial_counts"
# On the experiment: MLflow 3 opens an experiment by its kind; without it a new experiment opens in the
# GenAI view (traces). The value is the UI's own name for model training (mlflow/server/js: ExperimentKind).
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"
SIMULATED_MIXED = "mixed"  # coe_sweep.simulated on an experiment holding simulated and trained sweeps

KIND_SWEEP = "sweep"
KIND_TRIAL = "trial"

# --- metrics ---
STEP_METRICS = ("train_loss", "val_loss")
FINAL_METRICS = (
    "final_val_loss",
    "final_train_loss",
    "train_flops_per_token",
    "train_flops",
    "tokens",
    "steps",
    "params_total",
    "params_active",
    "peak_memory_bytes",
    "allocated_after_step_bytes",
    "estimated_memory_bytes",
    "tokens_per_s",
    "wall_s",
    "mfu",
)
# RunResult attribute -> final metric name: the same name, except where the objective registry says otherwise
# (RunResult.flops is logged as train_flops).
_RENAMED = {o.attr: o.metric for o in OBJECTIVES.values() if o.attr != o.metric}
RESULT_TO_METRIC = {next((a for a, m in _RENAMED.items() if m == name), name): name for name in FINAL_METRICS}
ROUTING_PREFIX = "routing."

# --- params ---
PARAM_BUDGET_LABEL = "budget_label"
PARAM_BUDGET_FLOPS = "budget_flops"
PARAM_ARM = "arm"
PARAM_SEED = "seed"
PARAM_PREFIXES = ("model.", "train.", "data.", "horizon.")
LABEL_PARAMS = frozenset({PARAM_BUDGET_LABEL, PARAM_ARM})

SPEC_ARTIFACT = "spec.yaml"
RESULT_ARTIFACT = "result.json"

MAX_PARAM_VALUE_CHARS = 6000  # MLflow 3 limit
MAX_TAG_VALUE_CHARS = 5000  # below MLflow's 8000, leaves room for multi-byte text

REJECTED_PREFIX = "rejected."  # parent-run metric per budget: candidates refused before training
RUN_STATUS_OF = {TrialStatus.OK: "FINISHED", TrialStatus.PRUNED: "KILLED"}  # MLflow run status by result; else FAILED
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")

Scalar = str | int | float | bool | None

_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def param_to_str(key: str, value: Scalar) -> str:
    """Serialise one param value for MLflow: Python's str() for scalars, repr() for floats (round-trips)."""
    if not isinstance(key, str) or not key:
        raise TypeError(f"param key {key!r} is invalid: expected a non-empty string")
    if value is not None and not isinstance(value, str | int | float | bool):
        raise TypeError(f"param {key}={value!r} ({type(value).__name__}) is invalid: expected a scalar "
                        "(str, int, float, bool or None); flatten nested values first")
    text = repr(value) if isinstance(value, float) else str(value)
    if len(text) > MAX_PARAM_VALUE_CHARS:
        raise ValueError(f"param {key} has a {len(text)}-character value: expected at most "
                         f"{MAX_PARAM_VALUE_CHARS} characters (MLflow's limit)")
    return text


def params_to_str(params: Mapping[str, Scalar]) -> dict[str, str]:
    return {key: param_to_str(key, value) for key, value in params.items()}


def parse_param(text: str) -> Scalar:
    """Inverse of param_to_str: 'True' -> True, '3' -> 3, '0.001' -> 0.001, 'None' -> None, else the string."""
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    if text == "None":
        return None
    if _INT_RE.fullmatch(text):
        return int(text)
    if _FLOAT_RE.fullmatch(text):
        return float(text)
    return text


def parse_params(params: Mapping[str, str]) -> dict[str, Scalar]:
    """Typed params; labels (budget_label) stay strings even when they look like numbers ('1e12')."""
    return {key: value if key in LABEL_PARAMS else parse_param(value) for key, value in params.items()}


def family_of(params: Mapping[str, Scalar]) -> str:
    """moe | coe | dense from flat params (model.dense, model.iterations); 'unknown' without them."""
    if params.get("model.dense") in (True, "True", "true"):
        return "dense"
    iterations = params.get("model.iterations")
    if iterations is None:
        return "unknown"
    return "coe" if int(str(iterations)) > 1 else "moe"


def bool_tag(value: bool) -> str:
    return "true" if value else "false"


def metric_value(key: str, value: Any) -> float:
    """A metric value as float; bools and non-numbers are refused with the key named."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"metric {key}={value!r} ({type(value).__name__}) is invalid: expected an int or float")
    return float(value)
