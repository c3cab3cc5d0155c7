"""The trial contract: what one trial trains, who it is, what it reports and how it ended.

Pure dataclasses (no torch, no Ray, no MLflow). Config flows one way:
SweepSpec -> TrialPlan -> RunSpec(model, train, data, horizon) + TrialIdentity -> a runner -> RunResult.

- `TrainConfig` and `DataConfig` validate themselves when built: every field carries its type, bounds and
  description in its metadata (`coe_sweep.spec.schema` generates the YAML sections from the same fields),
  and a bad value raises ValueError naming the field, the value and what is accepted.
- `Horizon`: how long to train, by explicit precedence steps > tokens > flops
  (tokens = flops / train_flops_per_token(model, seq_len), see coe_sweep.accounting).
- `RunResult`: THE one shape of a result, from the runner through the sweep's records to MLflow and back.
- `TrialStatus`: the only place a trial status is spelled.
- `OBJECTIVES`: the one objective registry (name, RunResult attribute, MLflow metric, direction).
- `TrialIdentity` and `FinishedTrial`: who a trial is in a sweep, and the thin record of a finished one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, Literal

from coe_sweep.fields import spec_field, validate_fields
from coe_sweep.model.config import ModelConfig

Schedule = Literal["constant", "cosine", "linear"]
Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["auto", "fp32", "bf16"]
Compile = Literal["off", "on", "auto"]
Direction = Literal["min", "max"]

BYTE_VOCAB_SIZE = 258  # 256 byte values + BOS + EOS
BUILTIN_SOURCES = ("arithmetic",)  # runners/arithmetic.py
SOURCE_ACCEPTED = "builtin:arithmetic | files:PATH_OR_GLOB | hf:NAME[:CONFIG][@SPLIT]"
TOKENIZER_ACCEPTED = "'byte' or 'bpe:N' with 260 <= N <= 1000000"
_HF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]*(:[A-Za-z0-9_.\-]+)?(@[A-Za-z0-9_.\-\[\]:%]+)?")


# ------------------------------------------------------------------------------------------- status
class TrialStatus(str, Enum):
    """How a trial ended (the first five are results a runner or the sweep records), or where it stands."""

    OK = "ok"
    DIVERGED = "diverged"  # NaN/inf loss
    OOM = "oom"
    FAILED = "failed"  # any other error (the reason says which)
    PRUNED = "pruned"  # stopped early by ASHA: a result, not a failure
    RUNNING = "running"  # read side: the MLflow run is still running
    KILLED = "killed"  # read side: interrupted by a sweep stop (no result; the relaunch runs it again)
    FINISHED = "finished"  # read side: an MLflow run that ended without a coe-sweep status

    def __str__(self) -> str:
        return self.value

    @property
    def is_result(self) -> bool:
        """A status a finished trial records (ok, diverged, oom, failed, pruned)."""
        return self in RESULT_STATUSES

    @property
    def is_failure(self) -> bool:
        """diverged, oom or failed: counts towards search.max_failures and the exit status."""
        return self in (TrialStatus.DIVERGED, TrialStatus.OOM, TrialStatus.FAILED)


RESULT_STATUSES = (TrialStatus.OK, TrialStatus.DIVERGED, TrialStatus.OOM, TrialStatus.FAILED, TrialStatus.PRUNED)


def parse_status(value: str | TrialStatus) -> TrialStatus:
    """'ok' -> TrialStatus.OK; ValueError naming the value and the accepted ones."""
    try:
        return TrialStatus(value)
    except ValueError:
        raise ValueError(f"status={value!r} is invalid: expected one of "
                         f"{', '.join(s.value for s in TrialStatus)}") from None


def check_source(source: str) -> str | None:
    scheme, _, rest = source.partition(":")
    if scheme == "builtin" and rest in BUILTIN_SOURCES:
        return None
    if scheme == "files" and rest.strip():
        return None
    if scheme == "hf" and _HF_NAME.fullmatch(rest):
        return None
    return SOURCE_ACCEPTED


def check_tokenizer(tokenizer: str) -> str | None:
    try:
        tokenizer_vocab_size(tokenizer)
    except ValueError:
        return TOKENIZER_ACCEPTED
    return None


def tokenizer_vocab_size(tokenizer: str) -> int:
    """Vocabulary size a tokenizer name implies: 'byte' -> 258, 'bpe:N' -> N.

    Torch-free so that accounting and `coe-sweep plan` know the LM-head size without loading data.
    """
    if tokenizer == "byte":
        return BYTE_VOCAB_SIZE
    if tokenizer.startswith("bpe:"):
        size = tokenizer.removeprefix("bpe:")
        if size.isdigit() and 260 <= int(size) <= 1_000_000:
            return int(size)
    raise ValueError(f"tokenizer={tokenizer!r} is invalid: expected {TOKENIZER_ACCEPTED}")


# ------------------------------------------------------------------------------------- run spec
@dataclass(frozen=True)
class DataConfig:
    """The dataset every trial of a data config trains on (the validation set is fixed by `seed`)."""

    source: str = spec_field("builtin:arithmetic", "builtin:arithmetic | files:PATH_OR_GLOB "
                             "(.parquet/.jsonl/.txt; relative to the spec file, may not leave its directory) | "
                             "hf:NAME[:CONFIG][@SPLIT]", check=check_source)
    text_template: str = spec_field("query : {question} response : {answer}", "Python format string applied "
                                    "to each example's columns.", min_length=1, max_length=10_000)
    tokenizer: str = spec_field("byte", "byte (vocab 258) | bpe:N (BPE trained on the train split, vocab N, "
                                "260 <= N <= 1000000). Sets the model's vocab_size.", check=check_tokenizer)
    val_tokens: int = spec_field(16_384, "Held-out validation tokens (same for every trial).", ge=1, le=10**9)
    num_examples: int = spec_field(20_000, "Examples the builtin generator makes (train + validation).", ge=2,
                                   le=10**8)
    seed: int = spec_field(0, "Data split / generator seed.", ge=0, le=2**32 - 1)
    cache_dir: str | None = spec_field(None, "Tokenized-data cache. None: ~/.cache/coe-sweep.", min_length=1,
                                       max_length=4096)

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of one trial (the horizon is separate: see Horizon)."""

    batch_size: int = spec_field(16, "Sequences per optimizer step.", ge=1, le=65_536)
    seq_len: int = spec_field(128, "Tokens per sequence (<= model.max_seq_len).", ge=2, le=1_048_576)
    lr: float = spec_field(3e-3, "Peak AdamW learning rate (tests drive divergence with 1e3).", gt=0, le=1e4)
    min_lr_ratio: float = spec_field(0.1, "cosine/linear floor as a fraction of lr.", ge=0, le=1)
    warmup_steps: int = spec_field(10, "Linear warmup steps.", ge=0, le=10**7)
    schedule: Schedule = spec_field("constant", "LR after warmup (the paper: warmup then constant).")
    beta1: float = spec_field(0.9, "AdamW beta1.", ge=0, lt=1)
    beta2: float = spec_field(0.95, "AdamW beta2.", ge=0, lt=1)
    weight_decay: float = spec_field(0.01, "AdamW decoupled weight decay.", ge=0, le=10)
    grad_clip: float = spec_field(1.0, "Global grad-norm clip (0: off).", ge=0, le=1e6)
    seed: int = spec_field(0, "Init and batch-order seed.", ge=0, le=2**32 - 1)
    eval_interval: int = spec_field(50, "Steps between validation passes (and one at the end).", ge=1, le=10**7)
    eval_batches: int | None = spec_field(None, "Validation batches per pass; None: all.", ge=1, le=10**6)
    device: Device = spec_field("auto", "auto: cuda when the trial has a GPU.")
    dtype: Dtype = spec_field("auto", "auto: bf16 autocast on CUDA, fp32 on CPU.")
    threads: int | None = spec_field(None, "CPU threads; None: the CPUs the trial was given.", ge=1, le=1024)
    compile: Compile = spec_field("auto", "torch.compile the training step: auto compiles when the horizon "
                                  "pays back the measured compile time (runners/step.py).")

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class Horizon:
    """How long to train. Precedence: steps > tokens > flops (first one set wins)."""

    steps: int | None = None
    tokens: int | None = None
    flops: float | None = None

    def __post_init__(self) -> None:
        if self.steps is None and self.tokens is None and self.flops is None:
            raise ValueError("Horizon: set one of steps, tokens or flops")
        for name in ("steps", "tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"Horizon.{name}={value!r} is invalid: expected an integer >= 1")
        if self.flops is not None and not (isinstance(self.flops, int | float) and self.flops > 0):
            raise ValueError(f"Horizon.flops={self.flops!r} is invalid: expected a number > 0")


# Fields that change how a trial is executed, not what it computes: left out of the config hash so that
# resuming on other hardware (or with another dispatch kernel) finds the same trials.
EXECUTION_ONLY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "model": ("dispatch", "attention_impl"), "train": ("device", "threads", "compile"), "data": ("cache_dir",)}


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs. A worker receives it whole and never re-plans."""

    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    horizon: Horizon = field(default_factory=lambda: Horizon(steps=100))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        return cls(model=ModelConfig.from_dict(d["model"]), train=TrainConfig(**d.get("train", {})),
                   data=DataConfig(**d.get("data", {})), horizon=Horizon(**d.get("horizon", {"steps": 100})))

    def config_hash(self) -> str:
        """The trial's config key: a hash of the run spec without execution-only fields (EXECUTION_ONLY_FIELDS)
        and without train.seed, so that the seeds of one config share it (a trial is (config hash, seed))."""
        # the four parts are flat dataclasses: vars() is asdict() without its deep copies (10x faster)
        d = {name: dict(vars(getattr(self, name))) for name in ("model", "train", "data", "horizon")}
        for section, names in (*EXECUTION_ONLY_FIELDS.items(), ("train", ("seed",))):
            for name in names:
                d[section].pop(name, None)
        d["horizon"] = {k: v for k, v in d["horizon"].items() if v is not None}
        return config_hash(d)

    def with_seed(self, seed: int) -> RunSpec:
        """The same run with train.seed = seed (init and batch order; the validation set stays fixed)."""
        return replace(self, train=replace(self.train, seed=seed))

    def flat_params(self) -> dict[str, str | int | float]:
        """`model.<f>`, `train.<f>`, `data.<f>`, `horizon.<f>` (None and bools as text): the MLflow params."""
        out: dict[str, str | int | float] = {}
        for section, values in self.to_dict().items():
            for name, value in values.items():
                simple = isinstance(value, int | float | str) and not isinstance(value, bool)
                out[f"{section}.{name}"] = value if simple else str(value)
        return out


def config_hash(config: Mapping[str, Any], length: int = 16) -> str:
    """Deterministic hash of a (JSON-able) config."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


# ----------------------------------------------------------------------------------------- result
Curve = list[tuple[int, float]]


@dataclass
class RunResult:
    """What one trial reports. Curves are lists of (step, value)."""

    status: TrialStatus
    reason: str | None = None  # why status != ok (exception text, 'nan loss at step 12', ...)
    steps: int = 0
    tokens: int = 0  # tokens trained on
    flops: float = 0.0  # analytic train FLOPs actually spent = train_flops_per_token * tokens
    train_flops_per_token: float = 0.0
    params_total: int = 0
    params_active: int = 0
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    train_curve: Curve = field(default_factory=list)
    val_curve: Curve = field(default_factory=list)
    peak_memory_bytes: int | None = None  # measured peak (cuda max_memory_allocated / CPU live-tensor peak);
    # a data-parallel trial: the largest over its workers, each worker's in peak_memory_per_worker_bytes
    peak_memory_per_worker_bytes: list[int] = field(default_factory=list)  # rank order; -1: not measured
    workers: int = 1  # data-parallel workers that trained the trial (train FLOPs and tokens are their total)
    allocated_after_step_bytes: int | None = None  # the paper's figure: memory_allocated after a step
    estimated_memory_bytes: int | None = None  # coe_sweep.accounting estimate, for comparison
    tokens_per_s: float | None = None
    wall_s: float = 0.0
    mfu: float | None = None  # model-FLOPs utilisation vs the device peak (CUDA only)
    device: str = "cpu"
    routing: dict[str, Any] = field(default_factory=dict)  # summary of routing statistics
    simulated: bool = False

    def __post_init__(self) -> None:
        try:
            self.status = parse_status(self.status)
        except ValueError as exc:
            raise ValueError(f"RunResult.{exc}") from None
        if not self.status.is_result:
            raise ValueError(f"RunResult.status={self.status.value!r} is invalid: expected one of "
                             f"{', '.join(s.value for s in RESULT_STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": parse_status(self.status).value}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunResult:
        """A RunResult from its `to_dict()` (a result record, a Tune report); ValueError or TypeError naming the
        field when the data is not one (a record edited or torn on disk must not become a trial)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"RunResult: expected a mapping, found {type(d).__name__}")
        values = dict(d)
        values["train_curve"] = [(int(s), float(v)) for s, v in d.get("train_curve", [])]
        values["val_curve"] = [(int(s), float(v)) for s, v in d.get("val_curve", [])]
        hints = _result_hints()
        for name, value in values.items():
            kind = str(hints.get(name, ""))
            if kind.startswith(("int", "float")):  # numbers must be numbers (NaN is one: a diverged loss)
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if not (number or (value is None and "None" in kind)):
                    raise ValueError(f"RunResult.{name}: expected a number, found {value!r:.40}")
        if not isinstance(values.get("reason"), str | None):
            raise ValueError(f"RunResult.reason: expected a string, found {values.get('reason')!r:.40}")
        return cls(**values)


@functools.cache
def _result_hints() -> dict[str, Any]:
    """RunResult's resolved annotations (what `from_dict` checks numbers against)."""
    return typing.get_type_hints(RunResult)


# ------------------------------------------------------------------------------------- objectives
@dataclass(frozen=True)
class Objective:
    """A figure of a trial that a sweep or an analysis can optimise."""

    name: str  # what a spec, the CLI and the API call it
    attr: str  # the RunResult attribute
    metric: str  # the MLflow metric and trials-frame column
    direction: Direction
    searchable: bool = False  # may be a search objective (search.objectives)


OBJECTIVES: Mapping[str, Objective] = {o.name: o for o in (
    Objective("val_loss", "final_val_loss", "final_val_loss", "min", searchable=True),
    Objective("peak_memory_bytes", "peak_memory_bytes", "peak_memory_bytes", "min", searchable=True),
    Objective("params_total", "params_total", "params_total", "min", searchable=True),
    Objective("params_active", "params_active", "params_active", "min", searchable=True),
    Objective("train_flops", "flops", "train_flops", "min", searchable=True),
    Objective("peak_memory", "peak_memory_bytes", "peak_memory_bytes", "min"),
    Objective("estimated_memory", "estimated_memory_bytes", "estimated_memory_bytes", "min"),
    Objective("train_flops_per_token", "train_flops_per_token", "train_flops_per_token", "min"),
    Objective("tokens", "tokens", "tokens", "min"),
    Objective("tokens_per_s", "tokens_per_s", "tokens_per_s", "max"),
    Objective("wall_s", "wall_s", "wall_s", "min"),
)}
PRIMARY_OBJECTIVE = "val_loss"  # single-objective searches and ASHA optimise this one
SEARCH_OBJECTIVES = tuple(name for name, o in OBJECTIVES.items() if o.searchable)


def objective_value(result: RunResult, name: str) -> float | None:
    """The value of objective `name` for a finished trial (None when it has none, e.g. diverged)."""
    value = getattr(result, OBJECTIVES[name].attr, None)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------- identity
def trial_id_of(config_hash: str, seed: int) -> str:
    """`<config hash[:8]>-s<seed>`: a trial's short id."""
    return f"{config_hash[:8]}-s{seed}"


def derived_arm(model: ModelConfig) -> str:
    """The arm of a trial whose spec names none: `dense`, `moe` (one chain iteration), `coe-C2`, `coe-C3`, ..."""
    return arm_name(model.iterations, model.dense)


def arm_name(iterations: int, dense: bool) -> str:
    return "dense" if dense else "moe" if iterations == 1 else f"coe-C{iterations}"


@dataclass(frozen=True)
class TrialIdentity:
    """Who a trial is in a sweep: its config, its seed, its budget level, its arm, and the searcher's point
    (the sampled values, bundle dimensions as choice indices) that Optuna learns from."""

    config_hash: str
    seed: int
    budget_label: str
    arm: str = ""
    point: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        """What a sweep keys a trial by: (config hash, seed)."""
        return self.config_hash, self.seed

    @property
    def trial_id(self) -> str:
        """The one short id of logs, the page, the API and the MLflow run name."""
        return trial_id_of(self.config_hash, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return {"config_hash": self.config_hash, "seed": self.seed, "budget_label": self.budget_label,
                "arm": self.arm, "point": dict(self.point)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialIdentity:
        if not isinstance(d, Mapping) or not isinstance(d.get("config_hash"), str) \
                or not isinstance(d.get("point", {}), Mapping):
            raise ValueError(f"a trial identity: expected {{config_hash, seed, budget_label, arm, point}}, "
                             f"found {d!r:.80}")
        return cls(str(d["config_hash"]), int(d.get("seed", 0)), str(d["budget_label"]), str(d.get("arm", "")),
                   dict(d.get("point", {})))


@dataclass(frozen=True)
class FinishedTrial:
    """A trial that reached an end: its identity and its result (the sweep's record of it)."""

    identity: TrialIdentity
    result: RunResult

    def to_dict(self) -> dict[str, Any]:
        return {"identity": self.identity.to_dict(), "result": self.result.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FinishedTrial:
        if not isinstance(d, Mapping):
            raise TypeError(f"a finished trial: expected a JSON object, found {type(d).__name__}")
        return cls(TrialIdentity.from_dict(d["identity"]), RunResult.from_dict(d["result"]))
