"""The sweep-spec schema: pydantic models for every section of `search_spaces/*.yaml`.

Every model forbids unknown keys and validates strictly (a string is not a number, `true` is not
an integer); the only coercions are integral floats to integers (`tokens: 2e6`) and, for FLOPs and
memory sizes, numeric strings (`"1e13"`, `"2GB"`). NaN and infinity are refused everywhere. Sizes
are capped (see `MODEL_BOUNDS` and the `le=` limits) so that a typo cannot ask for absurd memory.

Field names of `data` and `train` mirror `coe_sweep.run.DataConfig` / `TrainConfig` exactly, and
`model` takes `coe_sweep.model.config.ModelConfig` fields (tests hold these in sync). Checks that
need more than one section, the spec file's location or the accounting live in `load.py`.

Space keys (the fields a sweep samples): a bare name is a ModelConfig field (`top_k`), and
`train.<field>` / `data.<field>` name TrainConfig / DataConfig fields (`train.lr`). A dimension is
exactly one of `{choice: [...]}`, `{int: [lo, hi], step: s, log: bool}`, `{float: [lo, hi], log: bool}`.
A *bundle* is a key that is not a field name whose choices are all mappings of space keys to values,
e.g. `variant: {choice: [{iterations: 1, top_k: 4}, {iterations: 2, top_k: 2}]}`: one choice sets
several fields together (named architectures, ablations). Its sampled value is the choice's index;
`coe_sweep.search.space.expand_point` turns a point into field values.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import types
import typing
from dataclasses import MISSING, fields
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from coe_sweep.model.config import ModelConfig
from coe_sweep.run import tokenizer_vocab_size
from coe_sweep.search.constraints import Constraint, ConstraintSyntaxError, parse_constraint

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

MAX_FLOPS = 1e27  # beyond any training run this tool could schedule
MAX_TOKENS = 10**13
MAX_MEMORY_BYTES = 2**50  # 1 PiB
MAX_TRIALS_PER_BUDGET = 10_000
MAX_BUDGET_LEVELS = 50
MAX_CHOICES = 1_000

ALGORITHMS = ("grid", "random", "tpe", "nsga2")
SINGLE_OBJECTIVE = "val_loss"
MULTI_OBJECTIVES = ("val_loss", "peak_memory_bytes", "params_total", "params_active", "train_flops")
BUILTIN_SOURCES = ("arithmetic",)  # runners/arithmetic.py
EXECUTION_ONLY_MODEL_FIELDS = ("dispatch", "attention_impl")  # same math: never sampled, never hashed

# Inclusive bounds for ModelConfig's integer sizes: generous for real runs, fatal for typos.
MODEL_BOUNDS: dict[str, tuple[int, int]] = {
    "vocab_size": (1, 1_000_000), "max_seq_len": (1, 1_048_576), "d_model": (1, 65_536),
    "n_layers": (1, 1_024), "n_heads": (1, 1_024), "head_dim": (2, 65_536), "n_kv_heads": (1, 1_024), "d_expert": (1, 262_144),
    "n_experts": (1, 4_096), "n_shared": (0, 64), "top_k": (1, 4_096), "iterations": (1, 64),
}


def at(path: str, expected: str) -> str:
    """Message of a section-level check that is about one field below it: `@path@expected`.

    Model validators cannot set the error location; load.py reads this prefix back and reports the
    issue at `<section>.<path>` with the value found there."""
    return f"@{path}@{expected}"


def _integral(value: Any) -> Any:
    """Integral floats (`2e6` in YAML) become ints; everything else goes on to strict validation."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _numeric_string(value: Any) -> Any:
    """`"1e13"` (a quoted number) becomes a float; booleans are refused, not read as 0/1."""
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return value
    return value


Int = Annotated[int, BeforeValidator(_integral)]
Real = Annotated[float, Field()]  # a plain float, named so that Dimension's `float` field can use it
Flops = Annotated[float, BeforeValidator(_numeric_string), Field(gt=0, le=MAX_FLOPS)]

_MEMORY_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
                 "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_MEMORY_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
MEMORY_ACCEPTED = "bytes as an integer, or a size such as '2GB', '512MiB', '1.5GiB' (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"


def parse_memory(value: Any) -> Any:
    """`2GB` -> 2e9 bytes, `512MiB` -> 512 * 2**20; ints are bytes. Anything else raises ValueError."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(MEMORY_ACCEPTED)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a positive size: {MEMORY_ACCEPTED}")
        return value
    if isinstance(value, str):
        match = _MEMORY_RE.match(value)
        if match and match.group(2).lower() in _MEMORY_UNITS:
            size = float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]
            if size >= 1:
                return int(size)
            raise ValueError(f"a positive size: {MEMORY_ACCEPTED}")
    raise ValueError(MEMORY_ACCEPTED)


MemoryBytes = Annotated[int, BeforeValidator(parse_memory), Field(ge=1, le=MAX_MEMORY_BYTES)]


class Section(BaseModel):
    model_config = STRICT


class TrackingSection(Section):
    """Where the sweep is recorded in MLflow."""

    uri: str | None = Field(None, description="MLflow tracking URI (sqlite:///..., http(s)://host:port, "
                            "postgresql://...). None: `sqlite:///<cwd>/mlflow.db`, resolved by load_spec.")
    experiment: str | None = Field(None, min_length=1, max_length=200,
                                   description="MLflow experiment name. None: the sweep name.")

    @field_validator("uri")
    @classmethod
    def _uri(cls, uri: str | None) -> str | None:
        if uri is not None and not re.match(r"^[a-z][a-z0-9+.-]*:(//)?\S+$", uri):
            raise ValueError("a URI with a scheme, e.g. 'sqlite:///mlflow.db' or 'http://127.0.0.1:5000'")
        return uri


class ClusterSection(Section):
    """Where trials run: local Ray (started and stopped by the sweep) or an existing Ray cluster."""

    address: str | None = Field(None, description="Ray address: None starts a local Ray; 'auto' joins the "
                                "cluster of this machine; 'ray://host:10001' a Ray client; 'host:6379' a GCS.")
    cpus_per_trial: float = Field(1.0, gt=0, le=1024, description="CPUs reserved per trial (fractions allowed).")
    gpus_per_trial: float = Field(0.0, ge=0, le=64, description="GPUs reserved per trial (fractions share a GPU).")
    max_concurrent: Int | None = Field(None, ge=1, le=10_000, description="Trials running at once. "
                                       "None: as many as the cluster's resources allow.")
    storage_path: str | None = Field(None, min_length=1, description="Ray Tune results directory. "
                                     "None: `./sweeps/<name>`; relative paths are resolved against the cwd.")
    num_cpus: Int | None = Field(None, ge=1, le=4096, description="CPUs of the local Ray started for the "
                                 "sweep (only when address is None). None: all cores.")

    @field_validator("address")
    @classmethod
    def _address(cls, address: str | None) -> str | None:
        if address is not None and address != "auto" and not re.match(
                r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5}$", address):
            raise ValueError("null (local Ray), 'auto', 'ray://host:10001' or 'host:6379'")
        return address


class DataSection(Section):
    """The dataset every trial trains on: mirrors `coe_sweep.run.DataConfig`."""

    source: str = Field("builtin:arithmetic", description="builtin:arithmetic | files:PATH_OR_GLOB "
                        "(.parquet/.jsonl/.txt; relative to the spec file, may not leave its directory) | "
                        "hf:NAME[:CONFIG][@SPLIT]")
    text_template: str = Field("query : {question} response : {answer}", min_length=1, max_length=10_000,
                               description="Python format string applied to each example's columns.")
    tokenizer: str = Field("byte", description="byte (vocab 258) | bpe:N (BPE trained on the train split, "
                           "vocab N, 260 <= N <= 1000000). Sets the model's vocab_size.")
    val_tokens: Int = Field(16_384, ge=1, le=10**9, description="Held-out validation tokens (same for every trial).")
    num_examples: Int = Field(20_000, ge=1, le=10**8, description="Examples the builtin generator makes.")
    seed: Int = Field(0, ge=0, le=2**32 - 1, description="Data split / generator seed.")
    cache_dir: str | None = Field(None, min_length=1, description="Tokenized-data cache. None: ~/.cache/coe-sweep.")

    @field_validator("source")
    @classmethod
    def _source(cls, source: str) -> str:
        scheme, _, rest = source.partition(":")
        if scheme == "builtin" and rest in BUILTIN_SOURCES:
            return source
        if scheme == "files" and rest.strip():
            return source
        if scheme == "hf" and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-/]*(:[A-Za-z0-9_.\-]+)?(@[A-Za-z0-9_.\-\[\]:%]+)?",
                                           rest):
            return source
        raise ValueError(f"{', '.join('builtin:' + s for s in BUILTIN_SOURCES)} | files:PATH_OR_GLOB | "
                         "hf:NAME[:CONFIG][@SPLIT]")

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, tokenizer: str) -> str:
        try:
            tokenizer_vocab_size(tokenizer)
        except ValueError:
            raise ValueError("'byte' or 'bpe:N' with 260 <= N <= 1000000") from None
        return tokenizer


class TrainSection(Section):
    """Optimisation of every trial: mirrors `coe_sweep.run.TrainConfig` (the horizon comes from budget)."""

    batch_size: Int = Field(16, ge=1, le=65_536, description="Sequences per optimizer step.")
    seq_len: Int = Field(128, ge=2, le=1_048_576, description="Tokens per sequence (<= model.max_seq_len).")
    lr: float = Field(3e-3, gt=0, le=10, description="Peak AdamW learning rate.")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine/linear floor as a fraction of lr.")
    warmup_steps: Int = Field(10, ge=0, le=10**7, description="Linear warmup steps.")
    schedule: Literal["constant", "cosine", "linear"] = Field("constant", description="LR after warmup.")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW beta2.")
    weight_decay: float = Field(0.01, ge=0, le=10, description="AdamW decoupled weight decay.")
    grad_clip: float = Field(1.0, ge=0, le=1e6, description="Global grad-norm clip (0: off).")
    seed: Int = Field(0, ge=0, le=2**32 - 1, description="Init and batch-order seed.")
    eval_interval: Int = Field(50, ge=1, le=10**7, description="Steps between validation passes (and one at the end).")
    eval_batches: Int | None = Field(None, ge=1, le=10**6, description="Validation batches per pass; None: all.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when the trial has a GPU.")
    dtype: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on CUDA, fp32 on CPU.")
    threads: Int | None = Field(None, ge=1, le=1024, description="CPU threads; None: the CPUs the trial was given.")
    compile: Literal["off", "on", "auto"] = Field("auto", description="torch.compile the training step: auto "
                                                 "compiles when the horizon pays back the compile time.")


def _model_field_type(name: str, hint: Any) -> Any:
    """Type of a `model:` field: ModelConfig's annotation with integral-float coercion and bounds."""
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if base is int:
        lo, hi = MODEL_BOUNDS.get(name, (None, None))
        base = Annotated[int, BeforeValidator(_integral), Field(ge=lo, le=hi)]
    elif base is float:
        base = Annotated[float, Field(ge=0, le=1e9)]
    return base | None if optional else base


_MODEL_HINTS = typing.get_type_hints(ModelConfig)
_MODEL_DEFAULTS = {f.name: f.default for f in fields(ModelConfig) if f.default is not MISSING}
ModelSection: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "ModelSection",
    __config__=STRICT,
    __doc__="Fixed ModelConfig fields for every trial (see coe_sweep/model/config.py for their meaning). "
            "Only the fields written here are fixed; the rest take ModelConfig's defaults unless sampled. "
            "vocab_size comes from data.tokenizer; max_seq_len defaults to train.seq_len.",
    **{name: (_model_field_type(name, _MODEL_HINTS[name]), Field(_MODEL_DEFAULTS[name],
              description=f"ModelConfig.{name} (default {_MODEL_DEFAULTS[name]!r})"))
       for name in _MODEL_DEFAULTS},
)


class Dimension(Section):
    """One sampled field: exactly one of `choice`, `int` or `float`."""

    choice: list[Any] | None = Field(None, description="Values to choose from (1 to 1000 of them).")
    int: list[Int] | None = Field(None, description="[lo, hi] inclusive integer range.")
    float: list[Real] | None = Field(None, description="[lo, hi] real range.")
    step: Int | None = Field(None, ge=1, description="Spacing of an int range (not with log).")
    log: bool = Field(False, description="Sample an int/float range uniformly in log space (needs lo > 0).")

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        kinds = [k for k in ("choice", "int", "float") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("exactly one of {choice: [...]}, {int: [lo, hi]}, {float: [lo, hi]}"
                             + (f" (got {' and '.join(kinds)})" if kinds else ""))
        kind = kinds[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError(at("choice", "a non-empty choice list"))
            if len(self.choice) > MAX_CHOICES:
                raise ValueError(at("choice", f"at most {MAX_CHOICES} choices"))
            if self.log or self.step is not None:
                raise ValueError(at("log" if self.log else "step", "log/step only with an int or float range"))
            canonical = [json.dumps(v, sort_keys=True) for v in self.choice]
            if len(set(canonical)) != len(canonical):
                raise ValueError(at("choice", "distinct choices (a value is repeated)"))
            return self
        bounds = getattr(self, kind)
        if len(bounds) != 2:
            raise ValueError(at(kind, "[lo, hi], two numbers"))
        lo, hi = bounds
        if lo > hi:
            raise ValueError(at(kind, f"[lo, hi] with lo <= hi (lo={lo} > hi={hi})"))
        if self.log and lo <= 0:
            raise ValueError(at(kind, f"lo > 0 for a log range (lo={lo})"))
        if self.step is not None and (kind != "int" or self.log):
            raise ValueError(at("step", "step only with a linear int range"))
        return self

    @property
    def is_bundle(self) -> bool:
        """A choice of mappings: each choice sets several fields at once (`{iterations: 2, top_k: 2}`)."""
        return bool(self.choice) and all(isinstance(v, dict) for v in self.choice or [])

    @property
    def kind(self) -> str:
        return "choice" if self.choice is not None else "int" if self.int is not None else "float"

    @property
    def bounds(self) -> tuple[Any, Any]:
        values = self.int if self.int is not None else self.float
        assert values is not None
        return values[0], values[1]


class FlopsPerTokenBand(Section):
    """The paper's iso-compute as a band on train FLOPs per token (3 x forward, from accounting).

    Without `relative_to`, `min`/`max` are absolute train FLOPs per token. With `relative_to` (model
    fields applied over the fixed model, e.g. `{iterations: 1, top_k: 4}`), they are ratios of that
    reference config's train FLOPs per token: `{min: 0.9, max: 1.1, relative_to: {top_k: 4}}`."""

    min: Flops | None = Field(None, description="Lowest train FLOPs/token (or ratio) accepted.")
    max: Flops | None = Field(None, description="Highest train FLOPs/token (or ratio) accepted.")
    relative_to: dict[str, Any] | None = Field(None, description="Reference ModelConfig fields; makes min/max ratios.")

    @model_validator(mode="after")
    def _bounds(self) -> FlopsPerTokenBand:
        if self.min is None and self.max is None:
            raise ValueError("at least one of min, max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(at("min", f"min <= max (min={self.min:g} > max={self.max:g})"))
        return self


class BudgetSection(Section):
    """Compute per trial: a list of training-FLOPs levels (each trial at a level trains
    tokens = level / train_flops_per_token), or one fixed token count for every trial."""

    flops: list[Flops] | None = Field(None, min_length=1, max_length=MAX_BUDGET_LEVELS,
                                      description="Training-FLOPs levels (1e13 or '1e13' both read as 1e13).")
    tokens: Int | None = Field(None, ge=1, le=MAX_TOKENS, description="Fixed training tokens per trial.")
    flops_per_token: FlopsPerTokenBand | None = Field(None, description="Iso-compute band (see FlopsPerTokenBand).")
    max_memory: MemoryBytes | None = Field(None, description=f"Estimated training memory cap: {MEMORY_ACCEPTED}.")
    min_steps: Int = Field(1, ge=1, le=10**8, description="Candidates with fewer optimizer steps are rejected.")
    max_steps: Int | None = Field(None, ge=1, le=10**8, description="Candidates with more steps are rejected.")

    @model_validator(mode="after")
    def _one_horizon(self) -> BudgetSection:
        if (self.flops is None) == (self.tokens is None):
            raise ValueError("exactly one of flops: [levels] or tokens: N")
        if self.flops is not None and len(set(self.flops)) != len(self.flops):
            raise ValueError(at("flops", "distinct FLOPs levels (a level is repeated)"))
        if self.max_steps is not None and self.max_steps < self.min_steps:
            raise ValueError(at("max_steps", f"max_steps >= min_steps={self.min_steps}"))
        return self


class AshaSection(Section):
    """Asynchronous successive halving (single-objective only): stops poor trials early."""

    enabled: bool = Field(False, description="Use ASHA.")
    grace_period: Int = Field(1, ge=1, le=10**7, description="Reports (evaluations) before a trial may be stopped.")
    reduction_factor: float = Field(3.0, ge=1.5, le=100, description="Keep 1/reduction_factor at each rung.")


class SearchSection(Section):
    """How candidates are chosen at each budget level."""

    algorithm: Literal["grid", "random", "tpe", "nsga2"] = Field("tpe", description="grid runs every feasible "
                                                              "grid point; the others sample with Optuna.")
    objectives: list[Literal["val_loss", "peak_memory_bytes", "params_total", "params_active", "train_flops"]] = Field(
        default_factory=lambda: ["val_loss"], min_length=1,
        description="Metrics to minimise. val_loss only, except nsga2 (val_loss plus any of "
                    "peak_memory_bytes, params_total, params_active, train_flops).")
    trials_per_budget: Int | None = Field(None, ge=1, le=MAX_TRIALS_PER_BUDGET, description="Trials per level. "
                                          "None: every feasible point for grid, 8 for the samplers; "
                                          "for grid a number caps the points taken in grid order.")
    seed: Int = Field(0, ge=0, le=2**32 - 1, description="Sampler seed.")
    asha: AshaSection = Field(default_factory=AshaSection, description="Early stopping (single-objective).")
    max_failures: Int | None = Field(None, ge=0, le=10**6, description="Abort after this many failed "
                                     "trials; None: never abort (failures are recorded).")

    @model_validator(mode="after")
    def _objectives(self) -> SearchSection:
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(at("objectives", "distinct objectives (one is repeated)"))
        if self.algorithm != "nsga2" and self.objectives != ["val_loss"]:
            raise ValueError(at("objectives", f"[val_loss] for algorithm {self.algorithm} "
                                              "(more objectives need algorithm nsga2)"))
        if "val_loss" not in self.objectives:
            raise ValueError(at("objectives", "a list that includes val_loss"))
        if self.asha.enabled and len(self.objectives) > 1:
            raise ValueError(at("asha.enabled", "false with more than one objective (ASHA is single-objective)"))
        return self

    @property
    def objective_modes(self) -> list[tuple[str, str]]:
        """(metric, 'min') pairs: every objective is minimised."""
        return [(name, "min") for name in self.objectives]

    @property
    def default_trials(self) -> int:
        return 8 if self.trials_per_budget is None else self.trials_per_budget


class SweepSpec(Section):
    """One sweep: a search space over model/training fields, trained under compute budgets."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
                      description="Sweep name (letters, digits, _ . -): experiment and storage directory name.")
    description: str = Field("", max_length=10_000, description="Free text, shown in the dashboard.")
    tracking: TrackingSection = Field(default_factory=TrackingSection, description="MLflow destination.")
    cluster: ClusterSection = Field(default_factory=ClusterSection, description="Ray and trial resources.")
    data: DataSection = Field(default_factory=DataSection, description="Dataset (DataConfig).")
    model: ModelSection = Field(default_factory=ModelSection, description="Fixed ModelConfig fields.")  # type: ignore[valid-type]
    space: dict[str, Dimension] = Field(..., min_length=1, max_length=64,
                                        description="Sampled fields: `top_k`, `train.lr`, `data.seed` -> dimension.")
    constraints: list[str] = Field(default_factory=list, max_length=100,
                                   description="Expressions every candidate must satisfy, e.g. 'top_k <= n_experts'.")
    budget: BudgetSection = Field(..., description="Compute per trial, iso-compute band, memory cap, step bounds.")
    search: SearchSection = Field(default_factory=SearchSection, description="Algorithm and objectives.")
    train: TrainSection = Field(default_factory=TrainSection, description="Optimisation (TrainConfig).")

    @field_validator("constraints")
    @classmethod
    def _constraints_parse(cls, constraints: list[str]) -> list[str]:
        for text in constraints:
            try:
                parse_constraint(text)
            except ConstraintSyntaxError as exc:
                raise ValueError(at(f"[{constraints.index(text)}]", f"a constraint such as "
                                    f"'top_k <= n_experts' ({exc})")) from None
        return constraints

    # --- derived views (never stored) ---
    def fixed_model_fields(self) -> dict[str, Any]:
        """The `model:` fields the file sets explicitly (the rest are ModelConfig defaults)."""
        return self.model.model_dump(exclude_unset=True)

    def parsed_constraints(self) -> list[Constraint]:
        return [parse_constraint(text) for text in self.constraints]

    def sampled_field_keys(self) -> set[str]:
        """Space keys of every sampled field (bundles contribute the keys their choices set)."""
        keys: set[str] = set()
        for key, dim in self.space.items():
            keys.update(k for choice in dim.choice or [] for k in choice) if dim.is_bundle else keys.add(key)
        return keys

    def canonical_dict(self) -> dict[str, Any]:
        """The validated spec as JSON-able data: only explicitly-set model fields, and the train/data
        sections without the fields the space samples (their defaults would read as fixed values)."""
        data = self.model_dump(mode="json")
        data["model"] = self.model.model_dump(mode="json", exclude_unset=True)
        for key in self.sampled_field_keys():
            section, _, name = key.rpartition(".")
            if section in ("train", "data"):
                data[section].pop(name, None)
        data["space"] = {k: v.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
                         for k, v in self.space.items()}
        return data

    def spec_hash(self, length: int = 16) -> str:
        """Stable identity of the sweep: sha256 of the canonical JSON, without `tracking` and `cluster`
        (where a sweep runs and is recorded does not change what it computes, so a resumed sweep on
        another cluster or from another directory keeps its identity)."""
        data = self.canonical_dict()
        data.pop("tracking")
        data.pop("cluster")
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:length]

    def to_yaml(self) -> str:
        """The validated spec as YAML (defaults filled in); `load_spec` reads it back to an equal spec."""
        return yaml.safe_dump(self.canonical_dict(), sort_keys=False, default_flow_style=None, width=100)


def model_for_path(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the fields at `loc` (used to list accepted keys in errors)."""
    current: Any = SweepSpec
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X (Optional sections and fields)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def section_fields(section: str) -> list[str]:
    """Field names of the `data` or `train` section (to check `data.<f>` / `train.<f>` space keys)."""
    return list({"data": DataSection, "train": TrainSection}[section].model_fields)
