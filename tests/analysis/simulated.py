"""Seeded simulated sweeps with a known truth, fast: the simulate law called directly over planned trials.

No Ray, no MLflow, no training: each arm is a bundle choice of a small spec (the paper's MoE(K=2k) and
CoE(C=2, K=k) by default), planned at every level with the real planner (`plan_trial`: analytic FLOPs,
tokens, memory), its noise-free final loss from `SimulationLaw.plan_loss` (the truth), and each repetition
adds noise drawn like `simulate.trial_noise`: an own part per (config, seed) and a part per seed that every
config shares. The frame has the columns of `TrackingStore.trials_frame` that analysis reads, with the
`arm` and `seed` columns of the shared contract. Used by tests/analysis/test_calibration.py and
benchmarks/compare_calibration.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from coe_sweep.search.candidates import TrialPlan, budgets, plan_trial
from coe_sweep.spec import validate_spec_data
from runners.simulated import SimulationLaw

MOE_2K = {"iterations": 1, "top_k": 4, "n_layers": 2}
COE_2_K = {"iterations": 2, "top_k": 2, "n_layers": 2}
LEVELS = (1e12, 3e12, 1e13)
WALL_FLOPS_PER_S = 2e9  # a simulated machine: wall time = train FLOPs / this x (1 + 0.2 (C - 1))


MODEL = {"n_heads": 4, "d_expert": 64, "n_experts": 16, "n_shared": 1}  # search_spaces/coe_vs_moe.yaml's


def arm_spec(arms: dict[str, dict[str, Any]], levels: Sequence[float] = LEVELS, d_models: Sequence[int] = (64,),
             model: dict[str, Any] | None = None) -> Any:
    """A coe_vs_moe-like spec whose `variant` bundle holds the arms (in the given order)."""
    data = {"name": "calibration", "data": {"source": "builtin:arithmetic", "val_tokens": 8192},
            "model": dict(model or MODEL),
            "space": {"variant": {"choice": list(arms.values())}, "d_model": {"choice": list(d_models)}},
            "budget": {"flops": list(levels), "min_steps": 1},
            "search": {"algorithm": "grid"},
            "train": {"batch_size": 16, "seq_len": 128, "lr": 3e-3, "warmup_steps": 10, "eval_interval": 50}}
    return validate_spec_data(data)


@dataclass(frozen=True)
class Design:
    """Planned trials of every arm (index into `arms`) and their noise-free losses under `law`."""

    arms: tuple[str, ...]
    plans: tuple[tuple[str, TrialPlan], ...]  # (arm, plan), every config at every level
    truth: tuple[float, ...]  # plan_loss per plan
    law: SimulationLaw

    def true_best(self, arm: str, label: str) -> float:
        """The arm's lowest noise-free loss at a level (its best config's truth)."""
        return min(t for (a, p), t in zip(self.plans, self.truth, strict=True) if a == arm and p.budget_label == label)

    def plan_of(self, arm: str) -> TrialPlan:
        return next(p for a, p in self.plans if a == arm)


def design(arms: dict[str, dict[str, Any]], law: SimulationLaw, levels: Sequence[float] = LEVELS,
           d_models: Sequence[int] = (64,), copies: dict[str, str] | None = None,
           model: dict[str, Any] | None = None) -> Design:
    """Plans for every arm at every level; `copies` {new arm: existing arm} adds an arm with the very same
    configs (an A/A comparison: the true difference is exactly 0) whose noise is drawn independently."""
    spec = arm_spec(arms, levels, d_models, model)
    plans: list[tuple[str, TrialPlan]] = []
    for budget in budgets(spec):
        for i, name in enumerate(arms):
            for d in d_models:
                plan = plan_trial(spec, budget, {"variant": i, "d_model": d})
                assert plan.feasible and plan.run_spec is not None, plan.reason
                plans.append((name, plan))
    for new, old in (copies or {}).items():
        plans += [(new, p) for a, p in list(plans) if a == old]
    return Design(tuple([*arms, *(copies or {})]), tuple(plans), tuple(law.plan_loss(p) for _, p in plans), law)


def trials_frame(d: Design, seeds: int, rng: np.random.Generator) -> pd.DataFrame:
    """One repetition: every planned trial at seeds 0..seeds-1 with fresh noise."""
    shared = rng.normal(0.0, d.law.seed_noise_std, seeds) if d.law.seed_noise_std > 0 else np.zeros(seeds)
    rows = []
    for (arm, plan), truth in zip(d.plans, d.truth, strict=True):
        own = rng.normal(0.0, d.law.noise_std, seeds)
        cfg = plan.run_spec.model  # type: ignore[union-attr]
        wall_s = plan.train_flops / WALL_FLOPS_PER_S * (1 + 0.2 * (cfg.iterations - 1))
        key = f"{arm}:{plan.config_hash}"  # an A/A copy is a different config of the same architecture
        for s in range(seeds):
            rows.append({"run_id": f"{key}:{s}", "config_hash": key, "arm": arm, "seed": s, "status": "ok",
                         "budget_label": plan.budget_label, "budget_flops": plan.budget_flops,
                         "final_val_loss": truth + own[s] + shared[s], "train_flops": plan.train_flops,
                         "peak_memory_bytes": float(plan.memory_bytes), "wall_s": wall_s,
                         "model.iterations": cfg.iterations, "model.top_k": cfg.top_k,
                         "model.n_layers": cfg.n_layers, "model.d_model": cfg.d_model})
    return pd.DataFrame(rows)


def true_multiplier(d: Design, arm: str, baseline: str, label: str) -> float:
    """Compute the baseline (one config) needs to reach the arm's true loss at `label`, over the level's FLOPs."""
    base = d.plan_of(baseline)
    target = d.true_best(arm, label)
    flops = next(p.budget_flops for a, p in d.plans if a == arm and p.budget_label == label)
    tokens_per_flop = 1.0 / base.train_flops_per_token

    def gap(log_c: float) -> float:
        return d.law.plan_loss(base, tokens=math.exp(log_c) * tokens_per_flop) - target

    return math.exp(optimize.brentq(gap, math.log(flops) - 20, math.log(flops) + 20, xtol=1e-12)) / flops


@dataclass
class Tally:
    """Counts over repetitions of one scenario (each level of each repetition is one trial of a rate)."""

    no_difference: list[bool]  # A/A arm: verdict "no detectable difference"
    diff_covered: list[bool]  # effect arm: the CI of the paired difference holds the true difference
    mult_covered: list[bool]  # effect arm: the multiplier CI holds the true multiplier
    null_mult_covered: list[bool]  # A/A arm: the multiplier CI holds 1
    detected: list[bool]  # effect arm, levels whose true |difference| exceeds the expected MDD
    predicted_power: list[float]  # t-test power at those levels' true difference and noise

    @staticmethod
    def rate(flags: list[bool]) -> float:
        return float(np.mean(flags)) if flags else float("nan")


def true_sd_of_difference(law: SimulationLaw) -> float:
    """The paired difference's noise: the seed-shared part cancels, each side keeps its own."""
    return math.sqrt(2) * law.noise_std


def run_scenario(d: Design, *, baseline: str, effect_arm: str | None, null_arm: str | None, seeds: int, reps: int,
                 n_boot: int, rng: np.random.Generator, single_config: bool = True) -> Tally:
    """Repeat: simulate a frame, compare every arm with the baseline, tally against the truth."""
    from coe_sweep.analysis.compare import compare_arms
    from coe_sweep.analysis.paired import detectable_difference, t_power

    tally = Tally([], [], [], [], [], [])
    sd = true_sd_of_difference(d.law)
    mdd = detectable_difference(sd, seeds)
    labels = list(dict.fromkeys(p.budget_label for _, p in d.plans))
    truth = {arm: {lb: d.true_best(arm, lb) - d.true_best(baseline, lb) for lb in labels} for arm in d.arms}
    mult_truth = {lb: true_multiplier(d, effect_arm, baseline, lb) for lb in labels} if (
        effect_arm and single_config) else {}
    for _ in range(reps):
        result = compare_arms(trials_frame(d, seeds, rng), baseline, n_boot=n_boot,
                              seed=int(rng.integers(2**31)))
        for budget in result.budgets:
            for arm in budget.arms:
                if arm.diff is None:
                    continue
                if arm.arm == null_arm:
                    tally.no_difference.append(arm.diff.verdict == "no detectable difference")
                if arm.arm == effect_arm and arm.diff.ci is not None:
                    true = truth[arm.arm][budget.budget_label]
                    tally.diff_covered.append(arm.diff.ci[0] <= true <= arm.diff.ci[1])
                    if mdd is not None and abs(true) > mdd:
                        tally.detected.append(arm.diff.verdict != "no detectable difference")
                        tally.predicted_power.append(t_power(true, sd, seeds))
        for m in result.multipliers:
            if m.ci is None:
                continue
            hi = math.inf if m.ci[1] is None else m.ci[1]
            label = next(lb for lb in labels if math.isclose(float(lb), m.flops, rel_tol=1e-6))
            if m.arm == null_arm:
                tally.null_mult_covered.append(m.ci[0] <= 1.0 <= hi)
            if m.arm == effect_arm and label in mult_truth:
                tally.mult_covered.append(m.ci[0] <= mult_truth[label] <= hi)
    return tally
