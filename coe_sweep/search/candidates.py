"""Budgets and trial plans: what one candidate config trains at one budget level, and whether it may.

`plan_trial(spec, budget, sampled)` turns a point of the space into a `TrialPlan`: the RunSpec
(fixed model fields + sampled fields, vocab from the tokenizer, max_seq_len from seq_len when not
fixed, Horizon(flops=level) or Horizon(tokens=N)), the analytic numbers from coe_sweep.accounting
(params, FLOPs/token by term, tokens = level / train_flops_per_token, steps = ceil(tokens / (batch *
seq_len)) as runners/plan.py trains, estimated memory) and feasibility. Checks, in this order (the
first failure is the `reason`; `failed_checks` lists them all):
  model      the fields do not make a valid ModelConfig
  seq_len    train.seq_len > model.max_seq_len
  constraint a spec constraint is false
  band       train FLOPs/token outside budget.flops_per_token
  memory     estimated training memory over budget.max_memory
  max_steps  more optimizer steps than budget.max_steps
  min_steps  the level pays for fewer than budget.min_steps whole steps (tokens < min_steps x batch
             x seq_len; min_steps >= 1, so every trial gets at least one full step)
Rejected candidates are listed with their reason and never trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coe_sweep.accounting import (
    forward_flops_per_token,
    memory_estimate,
    params_active,
    params_total,
    tokens_for_flops,
    train_flops_per_token,
)
from coe_sweep.model.config import ModelConfig
from coe_sweep.search.space import candidate_points, expand_point
from coe_sweep.spec.arms import arm_of
from coe_sweep.trial import DataConfig, Horizon, RunSpec, TrainConfig, tokenizer_vocab_size
from coe_sweep.trial import config_hash as _hash
from coe_sweep.units import format_bytes, format_number

if TYPE_CHECKING:
    from coe_sweep.spec.schema import SweepSpec

CHECKS = ("model", "seq_len", "constraint", "band", "memory", "max_steps", "min_steps")


@dataclass(frozen=True)
class Budget:
    """One budget level: training FLOPs per trial, or a fixed token count (then `flops` is None)."""

    index: int
    label: str  # "1e13" (FLOPs level) or "2e6tok" (token budget): the budget_label in MLflow
    flops: float | None = None
    tokens: int | None = None


def budgets(spec: SweepSpec) -> list[Budget]:
    """The spec's budget levels, in file order."""
    if spec.budget.flops is not None:
        return [Budget(i, format_number(f), flops=f) for i, f in enumerate(spec.budget.flops)]
    assert spec.budget.tokens is not None
    return [Budget(0, f"{format_number(spec.budget.tokens)}tok", tokens=spec.budget.tokens)]


@dataclass
class TrialPlan:
    """One candidate at one budget level: its RunSpec, analytic numbers and feasibility."""

    budget_label: str
    budget_flops: float  # the level; for a token budget: tokens x train_flops_per_token of this config
    sampled: dict[str, Any]  # the point as sampled (bundle dimensions as choice indices)
    run_spec: RunSpec | None  # None only when the fields do not make a valid ModelConfig
    config_hash: str
    params_total: int = 0
    params_active: int = 0
    flop_terms: dict[str, float] = field(default_factory=dict)  # forward FLOPs/token by term + total
    train_flops_per_token: float = 0.0
    tokens: int = 0
    steps: int = 0
    memory_bytes: int = 0  # estimated peak training memory
    memory_terms: dict[str, int] = field(default_factory=dict)
    feasible: bool = False
    reason: str | None = None  # why not feasible (the first failed check)
    failed_checks: tuple[str, ...] = ()
    family: str = ""  # moe | coe | dense
    arm: str = ""  # the architecture's arm (coe_sweep.spec.arms): planning metadata, not in the config hash
    budget_index: int = 0
    fields: dict[str, Any] = field(default_factory=dict)  # the point's field values (bundles expanded)

    @property
    def train_flops(self) -> float:
        """FLOPs the runner spends: steps x batch x seq_len x train FLOPs/token (< one step over the level)."""
        if self.run_spec is None:
            return 0.0
        t = self.run_spec.train
        return self.steps * t.batch_size * t.seq_len * self.train_flops_per_token


def split_sampled(sampled: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{'top_k': 2, 'train.lr': 1e-3} -> {'model': {'top_k': 2}, 'train': {'lr': 1e-3}, 'data': {}}."""
    out: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "data": {}}
    for key, value in sampled.items():
        section, _, name = key.rpartition(".")
        out[section or "model"][name] = value
    return out


def model_fields_for(spec: SweepSpec, model_sampled: dict[str, Any], data: DataConfig,
                     train: TrainConfig) -> dict[str, Any]:
    """ModelConfig kwargs: fixed fields + sampled fields + vocab from the tokenizer + max_seq_len."""
    fields_ = {**spec.fixed_model_fields(), **model_sampled}
    fields_["vocab_size"] = tokenizer_vocab_size(data.tokenizer)
    fields_.setdefault("max_seq_len", train.seq_len)
    return fields_


def _memory_dtype(spec: SweepSpec, train: TrainConfig) -> str:
    if train.dtype != "auto":
        return train.dtype
    on_cuda = train.device == "cuda" or (train.device == "auto" and spec.cluster.wants_gpus)
    return "bf16" if on_cuda else "fp32"


def band_limits(spec: SweepSpec, seq_len: int) -> tuple[float | None, float | None]:
    """Absolute train-FLOPs/token limits of the iso-compute band (None: unbounded)."""
    band = spec.budget.flops_per_token
    if band is None:
        return None, None
    if band.relative_to is None:
        return band.min, band.max
    reference = ModelConfig(**{**spec.fixed_model_fields(), **band.relative_to,
                               "vocab_size": tokenizer_vocab_size(spec.data.tokenizer),
                               "max_seq_len": max(seq_len, spec.fixed_model_fields().get("max_seq_len", 0))})
    ref = train_flops_per_token(reference, seq_len)
    return (None if band.min is None else band.min * ref), (None if band.max is None else band.max * ref)


def _constraint_failures(spec: SweepSpec, run_spec: RunSpec) -> list[tuple[str, str]]:
    """The first spec constraint the run spec breaks, as a ("constraint", reason) failure."""
    cfg, train, data = run_spec.model, run_spec.train, run_spec.data
    failures: list[tuple[str, str]] = []
    values = {**vars(cfg), **{f"train.{k}": v for k, v in train.__dict__.items()},
              **{f"data.{k}": v for k, v in data.__dict__.items()}}
    for constraint in spec.parsed_constraints():
        try:
            holds = constraint.evaluate(values)
        except (ValueError, KeyError) as exc:  # refused at load time; here only for hand-built specs
            failures.append(("constraint", f"constraint {constraint.text!r} cannot be evaluated: {exc}"))
            break
        if not holds:
            failures.append(("constraint", f"constraint {constraint.text!r} is false"))
            break
    return failures


def plan_trial(spec: SweepSpec, budget: Budget, sampled: dict[str, Any]) -> TrialPlan:
    """Plan one candidate at one budget level (never raises for an infeasible candidate)."""
    parts = split_sampled(expand_point(spec, sampled))
    data = DataConfig(**{**spec.data.model_dump(), **parts["data"]})
    train = TrainConfig(**{**spec.train.model_dump(), **parts["train"]})
    horizon = Horizon(flops=budget.flops) if budget.flops is not None else Horizon(tokens=budget.tokens)
    model_kwargs = model_fields_for(spec, parts["model"], data, train)
    try:
        cfg = ModelConfig(**model_kwargs)
    except (ValueError, TypeError) as exc:
        key = _hash({"model": model_kwargs, "train": train.__dict__, "data": data.__dict__,
                     "horizon": horizon.__dict__})
        return TrialPlan(budget.label, budget.flops or 0.0, dict(sampled), None, key, reason=f"invalid model: {exc}",
                         failed_checks=("model",), budget_index=budget.index,
                         fields=expand_point(spec, sampled))
    run_spec = RunSpec(model=cfg, train=train, data=data, horizon=horizon)
    failures: list[tuple[str, str]] = []
    if train.seq_len > cfg.max_seq_len:
        failures.append(("seq_len", f"train.seq_len={train.seq_len} > model.max_seq_len={cfg.max_seq_len}"))
        seq_len_for_accounting = cfg.max_seq_len
    else:
        seq_len_for_accounting = train.seq_len
    failures += _constraint_failures(spec, run_spec)
    terms = forward_flops_per_token(cfg, seq_len_for_accounting)
    tfpt = train_flops_per_token(cfg, seq_len_for_accounting)
    lo, hi = band_limits(spec, seq_len_for_accounting)
    if (lo is not None and tfpt < lo) or (hi is not None and tfpt > hi):
        failures.append(("band", f"train FLOPs/token {tfpt:.4g} outside the band "
                                  f"[{'-inf' if lo is None else f'{lo:.4g}'}, {'inf' if hi is None else f'{hi:.4g}'}]"))
    memory = memory_estimate(cfg, train.batch_size, seq_len_for_accounting, dtype=_memory_dtype(spec, train))
    if spec.budget.max_memory is not None and memory.total > spec.budget.max_memory:
        failures.append(("memory", f"estimated memory {format_bytes(memory.total)} > "
                                   f"max_memory {format_bytes(spec.budget.max_memory)}"))
    if budget.flops is not None:
        tokens = tokens_for_flops(cfg, seq_len_for_accounting, budget.flops)
    else:
        tokens = int(budget.tokens or 0)
    per_step = train.batch_size * train.seq_len
    steps = max(1, math.ceil(tokens / per_step))  # what runners/plan.py trains
    if spec.budget.max_steps is not None and steps > spec.budget.max_steps:
        failures.append(("max_steps", f"{steps} steps > max_steps={spec.budget.max_steps}"))
    if tokens < spec.budget.min_steps * per_step:  # the level must pay for min_steps whole steps
        failures.append(("min_steps", f"{tokens} tokens pay for {tokens // per_step} steps < "
                                      f"min_steps={spec.budget.min_steps} ({train.batch_size}x{train.seq_len} "
                                      "tokens/step)"))
    return TrialPlan(
        budget_label=budget.label, budget_flops=budget.flops if budget.flops is not None else tokens * tfpt,
        sampled=dict(sampled), run_spec=run_spec, config_hash=run_spec.config_hash(),
        params_total=params_total(cfg), params_active=params_active(cfg), flop_terms=terms.as_dict(),
        train_flops_per_token=tfpt, tokens=tokens, steps=steps, memory_bytes=memory.total,
        memory_terms=memory.as_dict(), feasible=not failures, reason=failures[0][1] if failures else None,
        failed_checks=tuple(code for code, _ in failures), family=cfg.family, arm=arm_of(spec, sampled, cfg),
        budget_index=budget.index,
        fields=expand_point(spec, sampled),
    )


def feasibility_points(spec: SweepSpec) -> tuple[list[dict[str, Any]], bool]:
    """Points the load-time check plans (see space.candidate_points)."""
    return candidate_points(spec, seed=spec.search.seed)
