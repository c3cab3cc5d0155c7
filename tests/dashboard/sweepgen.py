"""Synthetic sweeps for dashboard tests and the latency benchmark.

Trial plans are real `RunSpec`s with the analytic numbers of `coe_sweep.accounting` (params,
train FLOPs per token, tokens = budget / FLOPs per token) and results from the orchestrator's
simulated-loss law (`runners.simulated.simulate`), written through the real tracking
writer (`SweepTracker`) into a real MLflow store. Only the Ray/Optuna driver is skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from coe_sweep.accounting import params_active, params_total, train_flops_per_token
from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import DataConfig, Horizon, RunResult, RunSpec, TrainConfig, trial_id_of
from runners.simulated import simulate

SEQ_LEN, BATCH = 64, 8


@dataclass(frozen=True)
class Plan:
    """What `simulate` and the tracker need of a trial plan (duck-typed like candidates.TrialPlan)."""

    budget_label: str
    budget_flops: float
    run_spec: RunSpec
    config_hash: str
    params_total: int
    params_active: int
    train_flops_per_token: float
    tokens: int
    steps: int

    @property
    def seed(self) -> int:
        return self.run_spec.train.seed

    @property
    def trial_id(self) -> str:
        return trial_id_of(self.config_hash, self.seed)

    def flat_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"budget_label": self.budget_label, "budget_flops": self.budget_flops}
        for section, values in self.run_spec.to_dict().items():
            for name, value in values.items():
                out[f"{section}.{name}"] = value
        return out


def plan(model: ModelConfig, budget_flops: float, label: str, lr: float = 3e-3, seed: int = 0) -> Plan:
    flops_per_token = train_flops_per_token(model, SEQ_LEN)
    tokens = int(budget_flops / flops_per_token)
    # about four evaluations per trial, whatever its length (keeps the curves short)
    train = TrainConfig(batch_size=BATCH, seq_len=SEQ_LEN, lr=lr, seed=seed,
                        eval_interval=max(1, tokens // (BATCH * SEQ_LEN) // 4))
    spec = RunSpec(model=model, train=train, data=DataConfig(), horizon=Horizon(flops=budget_flops))
    return Plan(label, budget_flops, spec, spec.config_hash(), params_total(model), params_active(model),
                flops_per_token, tokens, max(1, tokens // (BATCH * SEQ_LEN)))


def grid(budgets: Sequence[tuple[str, float]] = (("1e12", 1e12), ("3e12", 3e12), ("1e13", 1e13)),
         d_models: Sequence[int] = (16, 24, 32, 48, 64, 96, 128), iterations: Sequence[int] = (1, 2),
         n_experts: Sequence[int] = (8,), top_ks: Sequence[int] = (2,), n_layers: Sequence[int] = (2,),
         lrs: Sequence[float] = (3e-3,)) -> Iterator[Plan]:
    """Every combination, budgets outermost."""
    for (label, flops), d, c, n, k, layers, lr in itertools.product(budgets, d_models, iterations, n_experts,
                                                                  top_ks, n_layers, lrs):
        if k > n:
            continue
        model = ModelConfig(d_model=d, n_heads=4, d_expert=d, n_experts=n, top_k=k, iterations=c,
                            n_layers=layers, max_seq_len=SEQ_LEN)
        yield plan(model, flops, label, lr)


def result_for(p: Plan) -> RunResult:
    return simulate(p.run_spec, noise_key=p.config_hash, seed=p.run_spec.train.seed)


def seeded_arms(budgets: Sequence[tuple[str, float]] = (("1e12", 1e12), ("3e12", 3e12), ("1e13", 1e13)),
                arms: Sequence[tuple[int, int]] = ((1, 4), (2, 2), (3, 1)), seeds: int = 3) -> Iterator[Plan]:
    """Arms (iterations, top_k) of one size at every budget, each with seeds 0..seeds-1: a paired comparison."""
    for (label, flops), (iterations, top_k), seed in itertools.product(budgets, arms, range(seeds)):
        model = ModelConfig(d_model=32, n_heads=4, d_expert=32, n_experts=8, top_k=top_k, iterations=iterations,
                            n_layers=2, max_seq_len=SEQ_LEN)
        yield plan(model, flops, label, seed=seed)


def append_extras(tracker: Any, base: Plan, *, running: int = 1) -> dict[str, str]:
    """Add a diverged, a failed and `running` unfinished trials next to `base` to a started tracker."""
    diverging = plan(base.run_spec.model, base.budget_flops, base.budget_label, lr=0.5)
    failing = plan(replace(base.run_spec.model, n_layers=base.run_spec.model.n_layers + 1), base.budget_flops,
                   base.budget_label)
    extra: list[tuple[Plan, RunResult | None]] = [
        (diverging, result_for(diverging)),
        (failing, RunResult(status="failed", reason="RuntimeError: synthetic failure in a test"))]
    for i in range(running):
        model = replace(base.run_spec.model, n_layers=base.run_spec.model.n_layers + 2 + i)
        extra.append((plan(model, base.budget_flops, base.budget_label), None))
    ids = {}
    for p, result in extra:
        ids[p.trial_id] = run_id = tracker.start_trial(p.config_hash, p.flat_params(), seed=p.seed)
        if result is not None:
            tracker.log_result(run_id, result)
    return ids


def seed_sweep(uri: str, name: str, plans: Sequence[Plan], *, journal_dir: str, extra_failures: bool = True,
               running: int = 1, finish: str | None = "FINISHED", spec_yaml: str | None = None) -> dict[str, str]:
    """Write `plans` (+ a diverged and a failed trial, + `running` unfinished ones) as one sweep.

    Returns {trial_id: run_id}. The parent run stays RUNNING when finish is None.
    """
    from coe_sweep.tracking import SweepTracker

    tracker = SweepTracker(uri, name, spec_yaml or f"name: {name}\n", f"spec-{name}", journal_dir=journal_dir)
    tracker.start()
    ids: dict[str, str] = {}
    plans = list(plans)
    extra: list[tuple[Plan, RunResult | None]] = []
    if plans and extra_failures:
        base = plans[0]
        diverging = plan(base.run_spec.model, base.budget_flops, base.budget_label, lr=0.5)
        extra.append((diverging, result_for(diverging)))
        failing = plan(replace(base.run_spec.model, n_layers=3), base.budget_flops, base.budget_label)
        extra.append((failing, RunResult(status="failed", reason="RuntimeError: synthetic failure in a test")))
    for i in range(running):
        base = plans[-1] if plans else next(grid(budgets=(("1e12", 1e12),)))
        extra.append((plan(replace(base.run_spec.model, n_layers=4 + i), base.budget_flops, base.budget_label), None))
    for p, result in [(p, result_for(p)) for p in plans] + extra:
        run_id = tracker.start_trial(p.config_hash, p.flat_params(), seed=p.seed)
        ids[p.trial_id] = run_id
        if result is not None:
            tracker.log_result(run_id, result)
    if finish is not None:
        tracker.finish(finish)
    return ids
