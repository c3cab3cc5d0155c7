"""The simulated loss law: deterministic per config, IsoFLOP parabolas with interior minima, failure path,
constants settable from the spec (`simulate:` / `--set simulate.x=v`) so that tests know the truth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from coe_sweep.search.candidates import TrialPlan, budgets, plan_trial
from coe_sweep.search.space import grid_points
from coe_sweep.spec import SpecError, SweepSpec, load_spec
from coe_sweep.spec.schema import SimulateSection
from coe_sweep.trial import RunResult
from runners.simulated import DEFAULT_LAW, SimulationLaw, simulate, trial_noise

REPO = Path(__file__).resolve().parents[2]
SPEC = """\
name: t-sim
model: {n_heads: 2, n_layers: 1, d_expert: 16, n_experts: 4, n_shared: 1}
space: {iterations: {choice: [1, 2]}, top_k: {choice: [1, 2]}, d_model: {choice: [32, 64]}}
budget: {flops: [2e10, 6e10]}
train: {batch_size: 4, seq_len: 32, eval_interval: 100, warmup_steps: 2, threads: 1, lr: LR}
"""


def _spec_path(tmp_path: Path, lr: float = 3e-3, extra: str = "") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "sim.yaml"
    path.write_text(SPEC.replace("LR", repr(lr)) + extra)
    return path


def _spec(tmp_path: Path, lr: float = 3e-3) -> SweepSpec:
    return load_spec(_spec_path(tmp_path, lr))


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
        losses = [DEFAULT_LAW.loss(n, budget_flops / (6 * n), 3e-3) for n in n_grid]
        best = int(np.argmin(losses))
        assert 0 < best < len(n_grid) - 1, budget_flops
        optima.append(n_grid[best])
    assert optima == sorted(optima) and optima[0] < optima[-1]  # bigger models with more compute


def test_iterations_and_sparsity_raise_effective_params() -> None:
    effective_params = DEFAULT_LAW.effective_params
    base = effective_params(1e5, 1, 2, 16)
    assert effective_params(1e5, 2, 2, 16) > base
    assert effective_params(1e5, 2, 2, 16, shared_router=True) < effective_params(1e5, 2, 2, 16)
    assert effective_params(1e5, 1, 2, 32) > base
    assert effective_params(1e5, 1, 16, 16, dense=True) == pytest.approx(1e5)
    no_gain = SimulationLaw(c_iter=0.0, gamma_sparsity=0.0)
    assert no_gain.effective_params(1e5, 3, 2, 16) == no_gain.effective_params(1e5, 1, 2, 16) == pytest.approx(1e5)


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
    # the final loss is the noise-free law at the trained tokens plus this (config, seed)'s noise
    assert a.final_val_loss == pytest.approx(DEFAULT_LAW.plan_loss(plan) + trial_noise(plan.config_hash, 0))


def test_final_loss_noise_has_the_set_spread(spec) -> None:  # noqa: ANN001
    """Over many seeds the final loss scatters around plan_loss with sd sqrt(noise_std^2 + seed_noise_std^2);
    the seed-shared part is the same for two configs at one seed, so their difference has only the own part."""
    law = SimulationLaw(noise_std=0.02, seed_noise_std=0.03)
    budget = budgets(spec)[0]
    moe = plan_trial(spec, budget, {"iterations": 1, "top_k": 2, "d_model": 64})
    coe = plan_trial(spec, budget, {"iterations": 2, "top_k": 2, "d_model": 64})
    seeds = range(400)
    a = np.array([_simulate(moe, seed=s, law=law).final_val_loss for s in seeds]) - law.plan_loss(moe)
    b = np.array([_simulate(coe, seed=s, law=law).final_val_loss for s in seeds]) - law.plan_loss(coe)
    assert abs(a.mean()) < 3 * 0.036 / 20
    assert np.std(a, ddof=1) == pytest.approx(math.hypot(0.02, 0.03), rel=0.12)
    assert np.std(a - b, ddof=1) == pytest.approx(math.sqrt(2) * 0.02, rel=0.12)
    assert SimulationLaw(c_iter=0.0).plan_loss(coe) > law.plan_loss(coe)  # CoE's capacity gain, set to zero
    assert SimulationLaw(c_iter=0.0).plan_loss(moe) == law.plan_loss(moe)  # C = 1: ln C = 0, no gain to lose


def test_law_constants_from_the_spec_and_set(tmp_path: Path) -> None:
    path = _spec_path(tmp_path, extra="simulate: {c_iter: 0.0, noise_std: 0.02}\n")
    spec = load_spec(path)
    law = SimulationLaw.from_mapping(spec.simulate.law_values())
    assert law == SimulationLaw(c_iter=0.0, noise_std=0.02)
    overridden = load_spec(path, ["simulate.c_iter=0.5", "simulate.seed_noise_std=0.01"])
    assert SimulationLaw.from_mapping(overridden.simulate.law_values()) == SimulationLaw(
        c_iter=0.5, noise_std=0.02, seed_noise_std=0.01)
    assert _spec(tmp_path / "plain").simulate is None  # no section: the law's defaults
    assert spec.spec_hash() != _spec(tmp_path / "plain").spec_hash()  # the truth is part of the identity
    with pytest.raises(SpecError, match=r"simulate.noise_std.*-0.1.*greater than or equal to 0"):
        load_spec(path, ["simulate.noise_std=-0.1"])
    with pytest.raises(SpecError, match=r"unknown field 'c_iteration'.*c_iter"):
        load_spec(path, ["simulate.c_iteration=0"])
    with pytest.raises(ValueError, match="c_iteration"):
        SimulationLaw.from_mapping({"c_iteration": 0.0})


def test_simulate_section_mirrors_the_law() -> None:
    import dataclasses

    assert list(SimulateSection.model_fields) == [f.name for f in dataclasses.fields(SimulationLaw)]
    assert SimulationLaw.from_mapping(SimulateSection().law_values()) == SimulationLaw()


def test_simulate_diverges_above_the_stability_limit(tmp_path: Path) -> None:
    spec = _spec(tmp_path, lr=DEFAULT_LAW.diverge_lr * 2)
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


def test_a_sweep_trial_simulates_with_the_specs_law(tmp_path: Path) -> None:
    """The Ray trainable (called directly here: the same function Tune runs) uses the spec's `simulate:`."""
    from coe_sweep.trial import TrialIdentity
    from runners.trainable import RUN_RESULT_KEY, run_trial, trial_config

    spec = load_spec(_spec_path(tmp_path, extra="simulate: {noise_std: 0.0, c_iter: 1.0}\n"))
    params = {"iterations": 2, "top_k": 2, "d_model": 64}
    plan = plan_trial(spec, budgets(spec)[0], params)
    assert plan.run_spec is not None and spec.simulate is not None
    reports: list[dict] = []
    identity = TrialIdentity(plan.config_hash, 0, plan.budget_label, point=params)
    run_trial(trial_config(plan.run_spec, identity), report=reports.append, simulate=True,
              simulate_law=spec.simulate.law_values())
    final = reports[-1][RUN_RESULT_KEY]["final_val_loss"]
    assert final == pytest.approx(SimulationLaw(noise_std=0.0, c_iter=1.0).plan_loss(plan))
    assert final != pytest.approx(DEFAULT_LAW.plan_loss(plan))
