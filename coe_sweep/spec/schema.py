"""The sweep-spec schema: pydantic models for every section of `search_spaces/*.yaml` (the generated
`model`, `train` and `data` sections and the shared building blocks are in sections.py).

Every model forbids unknown keys and validates strictly (a string is not a number, `true` is not
an integer); the only coercions are integral floats to integers (`tokens: 2e6`) and, for FLOPs and
memory sizes, numeric strings (`"1e13"`, `"2GB"`). NaN and infinity are refused everywhere. Sizes
are capped (see `MODEL_BOUNDS` and the `le=` limits) so that a typo cannot ask for absurd memory.

Field names of `data` and `train` mirror `coe_sweep.trial.DataConfig` / `TrainConfig` exactly, and
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
import re
import types
import typing
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator

from coe_sweep.spec.arms import choice_fields
from coe_sweep.spec.constraints import Constraint, ConstraintSyntaxError, parse_constraint
from coe_sweep.spec.sections import (
    MAX_BUDGET_LEVELS,
    MAX_CHOICES,
    MAX_SEEDS,
    MAX_TOKENS,
    MAX_TRIALS_PER_BUDGET,
    DataSection,
    Flops,
    Int,
    MemoryBytes,
    ModelSection,
    Real,
    SearchObjective,
    Section,
    TrainSection,
    at,
)
from coe_sweep.trial import OBJECTIVES, PRIMARY_OBJECTIVE, SEARCH_OBJECTIVES
from coe_sweep.units import BYTES_ACCEPTED


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


MAX_WORKERS_PER_TRIAL = 256
MAX_GPUS_PER_TRIAL = 64


class ClusterSection(Section):
    """Where trials run: local Ray (started and stopped by the sweep) or an existing Ray cluster."""

    address: str | None = Field(None, description="Ray address: None starts a local Ray; 'auto' joins the "
                                "cluster of this machine; 'ray://host:10001' a Ray client; 'host:6379' a GCS.")
    cpus_per_trial: float = Field(1.0, gt=0, le=1024, description="CPUs reserved per trial (fractions allowed).")
    gpus_per_trial: float | Literal["auto"] = Field(
        0.0, description="GPUs per trial: a fraction <= 1 shares a GPU; a whole number N > 1 trains each trial "
        "data-parallel on N workers of one GPU each; 'auto' packs as many trials on a GPU as the memory estimate "
        "of the largest planned trial allows (at most 8; 0 on a machine without a GPU).")
    workers_per_trial: Int = Field(1, ge=1, le=MAX_WORKERS_PER_TRIAL, description="Data-parallel workers per "
                                   "trial (torch DDP through Ray Train; gloo on CPU, nccl on CUDA). Each takes "
                                   "train.batch_size / workers rows of the global batch and an equal share of "
                                   "cpus_per_trial. 1: the ordinary single-process trial.")
    gpu_memory: MemoryBytes | None = Field(None, description="Memory of one GPU, for gpus_per_trial: auto. None: "
                                           f"read from this machine's first CUDA device. {BYTES_ACCEPTED}.")
    max_concurrent: Int | None = Field(None, ge=1, le=10_000, description="Trials running at once. "
                                       "None: as many as the cluster's resources allow.")
    storage_path: str | None = Field(None, min_length=1, description="Ray Tune results directory. "
                                     "None: `./sweeps/<name>`; relative paths are resolved against the cwd.")
    num_cpus: Int | None = Field(None, ge=1, le=4096, description="CPUs of the local Ray started for the "
                                 "sweep (only when address is None). None: all cores.")
    interleave: bool = Field(True, description="Run the trials of every budget level in one Tune experiment "
                             "(each level keeps its own searcher), so no slot idles while trials remain; false: "
                             "one level after another.")

    @field_validator("address")
    @classmethod
    def _address(cls, address: str | None) -> str | None:
        if address is not None and address != "auto" and not re.match(
                r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5}$", address):
            raise ValueError("null (local Ray), 'auto', 'ray://host:10001' or 'host:6379'")
        return address

    @model_validator(mode="after")
    def _workers(self) -> ClusterSection:
        gpus = self.gpus_per_trial
        if gpus == "auto":
            if self.workers_per_trial > 1:
                raise ValueError(at("gpus_per_trial", "a number with workers_per_trial > 1 ('auto' shares a GPU "
                                                      "between trials; a data-parallel trial takes whole GPUs)"))
            return self
        if not 0 <= gpus <= MAX_GPUS_PER_TRIAL:
            raise ValueError(at("gpus_per_trial", f"'auto' or a number in [0, {MAX_GPUS_PER_TRIAL}]"))
        if gpus > 1 and not float(gpus).is_integer():
            raise ValueError(at("gpus_per_trial", "a fraction <= 1 (trials share a GPU) or a whole number of GPUs "
                                                  "(one per data-parallel worker)"))
        if gpus > 1 and self.workers_per_trial not in (1, int(gpus)):
            raise ValueError(at("workers_per_trial", f"1 or {int(gpus)} with gpus_per_trial={gpus:g} (each "
                                                     "data-parallel worker takes one GPU)"))
        return self

    @property
    def wants_gpus(self) -> bool:
        """Trials are meant for GPUs (auto included: its memory estimate is a GPU one)."""
        return self.gpus_per_trial == "auto" or self.gpus_per_trial > 0

    @property
    def trial_workers(self) -> int:
        """Data-parallel workers of one trial: workers_per_trial, else the whole GPUs above one."""
        gpus = self.gpus_per_trial
        if self.workers_per_trial == 1 and gpus != "auto" and gpus > 1:
            return int(gpus)
        return int(self.workers_per_trial)


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
    max_memory: MemoryBytes | None = Field(None, description=f"Estimated training memory cap: {BYTES_ACCEPTED}.")
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
    objectives: list[SearchObjective] = Field(
        default_factory=lambda: [PRIMARY_OBJECTIVE], min_length=1,
        description=f"Objectives (coe_sweep.trial.OBJECTIVES). {PRIMARY_OBJECTIVE} only, except nsga2 "
                    f"({PRIMARY_OBJECTIVE} plus any of {', '.join(SEARCH_OBJECTIVES[1:])}).")
    trials_per_budget: Int | None = Field(None, ge=1, le=MAX_TRIALS_PER_BUDGET, description="Trials per level. "
                                          "None: every feasible point for grid, 8 for the samplers; "
                                          "for grid a number caps the points taken in grid order.")
    seed: Int = Field(0, ge=0, le=2**32 - 1, description="Sampler seed.")
    seeds: Int = Field(1, ge=1, le=MAX_SEEDS, description="Training seeds per config: every config trains with "
                       "train.seed = 0 .. seeds-1 (init and batch order; the validation set is fixed), so seed i of "
                       "every arm pairs up. The searcher learns from the mean over a config's seeds.")
    asha: AshaSection = Field(default_factory=AshaSection, description="Early stopping (single-objective).")
    max_failures: Int | None = Field(None, ge=0, le=10**6, description="Abort after this many failed "
                                     "trials; None: never abort (failures are recorded).")

    @model_validator(mode="after")
    def _objectives(self) -> SearchSection:
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(at("objectives", "distinct objectives (one is repeated)"))
        if self.algorithm != "nsga2" and self.objectives != [PRIMARY_OBJECTIVE]:
            raise ValueError(at("objectives", f"[{PRIMARY_OBJECTIVE}] for algorithm {self.algorithm} "
                                              "(more objectives need algorithm nsga2)"))
        if PRIMARY_OBJECTIVE not in self.objectives:
            raise ValueError(at("objectives", f"a list that includes {PRIMARY_OBJECTIVE}"))
        if self.asha.enabled and len(self.objectives) > 1:
            raise ValueError(at("asha.enabled", "false with more than one objective (ASHA is single-objective)"))
        return self

    @property
    def objective_modes(self) -> list[tuple[str, str]]:
        """(objective name, direction) pairs, directions from the objective registry."""
        return [(name, OBJECTIVES[name].direction) for name in self.objectives]

    @property
    def default_trials(self) -> int:
        return 8 if self.trials_per_budget is None else self.trials_per_budget


class SimulateSection(Section):
    """Constants of the simulated loss law (`launch --simulate`): mirrors
    `runners.simulated.SimulationLaw` (a test holds the two in sync). Unset fields keep the
    law's defaults; tests set the arm effects and the noise so that they know the true answer."""

    e_loss: float | None = Field(None, ge=0, le=100, description="Irreducible loss E (nats/token).")
    a_params: float | None = Field(None, ge=0, le=1e30, description="Capacity coefficient A.")
    alpha: float | None = Field(None, gt=0, le=10, description="Capacity exponent alpha.")
    b_tokens: float | None = Field(None, ge=0, le=1e30, description="Data coefficient B.")
    beta: float | None = Field(None, gt=0, le=10, description="Data exponent beta.")
    c_iter: float | None = Field(None, ge=0, le=100, description="CoE effective-capacity gain per ln(iterations).")
    shared_router_share: float | None = Field(None, ge=0, le=100, description="Share of c_iter a shared router keeps.")
    gamma_sparsity: float | None = Field(None, ge=0, le=10, description="Exponent of n_experts / top_k.")
    c_lr: float | None = Field(None, ge=0, le=100, description="Curvature of the loss in ln(lr / lr_opt).")
    lr_opt: float | None = Field(None, gt=0, le=10, description="Learning rate of the lowest loss.")
    no_inner_residual_penalty: float | None = Field(None, ge=-100, le=100, description="Loss added without the inner residual.")
    outer_residual_penalty: float | None = Field(None, ge=-100, le=100, description="Loss added with the outer residual.")
    noise_std: float | None = Field(None, ge=0, le=100, description="Std of each (config, seed)'s own final-loss noise.")
    seed_noise_std: float | None = Field(None, ge=0, le=100, description="Std of the noise a seed shares across configs.")
    diverge_lr: float | None = Field(None, gt=0, le=1e6, description="Trials with a larger lr diverge.")

    def law_values(self) -> dict[str, float]:
        """The constants this section sets (for `SimulationLaw.from_mapping`)."""
        return self.model_dump(exclude_none=True)
class AnalysisSection(Section):
    """How the sweep's results are read."""

    baseline: str | None = Field(None, min_length=1, max_length=200, description="The arm the others are "
                                 "compared with. None: `moe` when the space has that arm, else the first arm.")


class SweepSpec(Section):
    """One sweep: a search space over model/training fields, trained under compute budgets."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
                      description="Sweep name (letters, digits, _ . -): experiment and storage directory name.")
    description: str = Field("", max_length=10_000, description="Free text, shown in the dashboard.")
    tracking: TrackingSection = Field(default_factory=TrackingSection, description="MLflow destination.")
    cluster: ClusterSection = Field(default_factory=ClusterSection, description="Ray and trial resources.")
    data: DataSection = Field(default_factory=DataSection, description="Dataset (DataConfig).")
    model: ModelSection = Field(default_factory=ModelSection, description="Fixed ModelConfig fields.")
    space: dict[str, Dimension] = Field(..., min_length=1, max_length=64,
                                        description="Sampled fields: `top_k`, `train.lr`, `data.seed` -> dimension.")
    constraints: list[str] = Field(default_factory=list, max_length=100,
                                   description="Expressions every candidate must satisfy, e.g. 'top_k <= n_experts'.")
    budget: BudgetSection = Field(..., description="Compute per trial, iso-compute band, memory cap, step bounds.")
    search: SearchSection = Field(default_factory=SearchSection, description="Algorithm and objectives.")
    train: TrainSection = Field(default_factory=TrainSection, description="Optimisation (TrainConfig).")
    simulate: SimulateSection | None = Field(None, description="Simulated-law constants for `launch --simulate`.")
    analysis: AnalysisSection = Field(default_factory=AnalysisSection, description="Baseline arm.")

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
            keys.update(k for choice in dim.choice or [] for k in choice_fields(choice)) if dim.is_bundle \
                else keys.add(key)
        return keys

    def canonical_dict(self) -> dict[str, Any]:
        """The validated spec as JSON-able data: only explicitly-set model fields, and the train/data
        sections without the fields the space samples (their defaults would read as fixed values) and without
        train.seed (search.seeds sets it per trial)."""
        data = self.model_dump(mode="json")
        data["model"] = self.model.model_dump(mode="json", exclude_unset=True)
        data["train"].pop("seed", None)
        for key in self.sampled_field_keys():
            section, _, name = key.rpartition(".")
            if section in ("train", "data"):
                data[section].pop(name, None)
        data["space"] = {k: v.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
                         for k, v in self.space.items()}
        if self.simulate is None:  # absent, it leaves the identity of every sweep written before it as it was
            data.pop("simulate")
        else:
            data["simulate"] = self.simulate.law_values()
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
