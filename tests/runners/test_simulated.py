"""The simulated loss law: deterministic per config, IsoFLOP parabolas with interior minima, failure path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from coe_sweep.search.candidates import TrialPlan, budgets, plan_trial
from coe_sweep.search.space import grid_points
from coe_sweep.spec import SweepSpec, load_spec
from coe_sweep.trial import RunResult
from runners.simulated import DIVERGE_LR, effective_params, law_loss, simulate

REPO = Path(__file__).resolve().parents[2]
SPEC = """\
name: t-sim
model: {n_heads: 2, n_layers: 1, d_expert: 16, n_experts: 4, n_shared: 1}
space: {iterations: {choice: [1, 2]}, top_k: {choice: [1, 2]}, d_model: {choice: [32, 64]}}
budget: {flops: [2e10, 6e10]}
train: {batch_size: 4, seq_len: 32, eval_interval: 100, warmup_steps: 2, threads: 1, lr: LR}
"""


def _spec(tmp_path: Path, lr: float = 3e-3) -> SweepSpec:
    path = tmp_path / "sim.yaml"
    path.write_text(SPEC.replace("LR", repr(lr)))
    return load_spec(path)


def _simulate(plan: TrialPlan, seed: int = 0, **kwargs: object) -> RunResult:
    assert plan.run_spec is not None
    return simulate(plan.run_spec, noise_key=plan.config_hash, seed=seed, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def spec(tmp_path: Path) -> SweepSpec:
    return _spec(tmp_path)


def test_law_isoflop_profile_has_interior_minimum() -> None:
    """At a fixed budget C = 6 N D the law is a parabola-like curve in log N with an interior minimum."""
    n_grid = np.logspace(3, 8, 200)
    optima = []
    for budget_flops in (1e11, 1e12, 1e13):
        losses = [law_loss(n, budget_flops / (6 * n), 3e-3) for n in n_grid]
        best = int(np.argmin(losses))
        assert 0 < best < len(n_grid) - 1, budget_flops
        optima.append(n_grid[best])
    assert optima == sorted(optima) and optima[0] < optima[-1]  # bigger models with more compute


def test_iterations_and_sparsity_raise_effective_params() -> None:
    base = effective_params(1e5, 1, 2, 16)
    assert effective_params(1e5, 2, 2, 16) > base
    assert effective_params(1e5, 2, 2, 16, shared_router=True) < effective_params(1e5, 2, 2, 16)
    assert effective_params(1e5, 1, 2, 32) > base
    assert effective_params(1e5, 1, 16, 16, dense=True) == pytest.approx(1e5)


def test_simulate_is_deterministic_and_reports_every_eval(spec) -> None:  # noqa: ANN001
    budget = budgets(spec)[0]
    plan = plan_trial(spec, budget, {"iterations": 2, "top_k": 2, "d_model": 64})
    reports: list[dict] = []
    a = _simulate(plan, seed=0, report=reports.append)
    b = _simulate(plan, seed=0)
    c = _simulate(plan, seed=1)
    assert a.status == "ok" and a.simulated
    assert a.final_val_loss == b.final_val_loss != c.final_val_loss
    assert a.steps == plan.steps and a.tokens == plan.steps * 4 * 32
    assert a.flops == pytest.approx(plan.train_flops_per_token * a.tokens)
    assert [r["step"] for r in reports] == [s for s, _ in a.val_curve]
    assert reports[-1]["step"] == plan.steps
    vals = [v for _, v in a.val_curve]
    assert vals[-1] < vals[0]  # it learns
    assert a.estimated_memory_bytes == plan.memory_bytes == a.peak_memory_bytes


def test_simulate_diverges_above_the_stability_limit(tmp_path: Path) -> None:
    spec = _spec(tmp_path, lr=DIVERGE_LR * 2)
    plan = plan_trial(spec, budgets(spec)[0], {"iterations": 1, "top_k": 1, "d_model": 32})
    result = _simulate(plan)
    assert result.status == "diverged" and "lr" in result.reason
    assert result.final_val_loss is None


@pytest.mark.parametrize("name", ["iso_flops.yaml", "coe_vs_moe.yaml", "quick.yaml"])
def test_shipped_spaces_give_interior_isoflop_minima(name: str) -> None:
    """For every shipped space, each budget's best simulated trial is not at the smallest or largest model."""
    path = REPO / "search_spaces" / name
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    spec = load_spec(path)
    plans = [p for b in budgets(spec) for p in (plan_trial(spec, b, point) for point in grid_points(spec))
             if p.feasible]
    by_budget: dict[str, list] = {}
    for p in plans:
        by_budget.setdefault(p.budget_label, []).append(p)
    interior = 0
    for label, group in by_budget.items():
        sizes = sorted({p.params_active for p in group})
        if len(sizes) < 3:
            continue
        losses = {p.params_active: _simulate(p).final_val_loss for p in group}
        best_n = min(losses, key=lambda n: losses[n] if losses[n] is not None else math.inf)
        interior += sizes[0] < best_n < sizes[-1]
        assert losses[best_n] is not None, label
    if name == "iso_flops.yaml":
        assert interior == len(by_budget) >= 3
