"""Budgets and trial plans: the planner's numbers are the accounting's numbers (and the runner's step
count), infeasible candidates carry their reason, hashes are deterministic, grids count right."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest

from coe_sweep import accounting
from coe_sweep.cli import main
from coe_sweep.search.candidates import (
    TrialPlan,
    budgets,
    plan_trial,
)
from coe_sweep.search.planned import planned_trials
from coe_sweep.search.space import dimension_values, expand_point, grid_points, grid_size, optuna_space
from coe_sweep.spec import SweepSpec, load_spec
from runners.plan import plan_horizon


def _all_plans(spec: SweepSpec) -> list[TrialPlan]:
    """Plans of every grid point at every budget level."""
    return [plan_trial(spec, budget, point) for budget in budgets(spec) for point in grid_points(spec)]


BASE = """\
name: cands
model: {d_model: 32, n_heads: 2, d_expert: 32, n_experts: 4}
space:
  iterations: {choice: [1, 2, 3]}
  top_k: {choice: [1, 2, 4]}
  n_layers: {int: [1, 3]}
budget:
  flops: [2e11, 1e12]
train: {batch_size: 8, seq_len: 64}
"""


def _spec(tmp_path: Path, text: str = BASE, overrides: tuple[str, ...] = ()) -> SweepSpec:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return load_spec(path, overrides)


def test_plan_numbers_equal_accounting_and_runner(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    plans = [p for p in _all_plans(spec) if p.run_spec is not None]
    assert len(plans) == 3 * 3 * 3 * 2
    for plan in plans:
        rs = plan.run_spec
        assert rs is not None
        cfg, seq_len, batch = rs.model, rs.train.seq_len, rs.train.batch_size
        level = spec.budget.flops[plan.budget_index]  # type: ignore[index]
        assert rs.horizon.flops == level and plan.budget_flops == level
        assert plan.params_total == accounting.params_total(cfg)
        assert plan.params_active == accounting.params_active(cfg)
        assert plan.flop_terms == accounting.forward_flops_per_token(cfg, seq_len).as_dict()
        assert plan.train_flops_per_token == accounting.train_flops_per_token(cfg, seq_len)
        assert plan.tokens == accounting.tokens_for_flops(cfg, seq_len, level) == int(level // plan.train_flops_per_token)
        assert plan.steps == math.ceil(plan.tokens / (batch * seq_len)) == plan_horizon(rs).steps
        assert plan.memory_bytes == accounting.memory_estimate(cfg, batch, seq_len, dtype="fp32").total
        assert cfg.vocab_size == 258 and cfg.max_seq_len == seq_len
        assert plan.family == ("moe" if cfg.iterations == 1 else "coe")
        # every trial at a level spends the level, to within one step
        assert abs(plan.train_flops - level) < batch * seq_len * plan.train_flops_per_token


def test_token_budget(tmp_path: Path) -> None:
    spec = _spec(tmp_path, BASE.replace("flops: [2e11, 1e12]", "tokens: 100000"))
    (budget,) = budgets(spec)
    assert budget.label == "1e5tok" and budget.tokens == 100_000
    plan = plan_trial(spec, budget, {"iterations": 2, "top_k": 2, "n_layers": 2})
    assert plan.run_spec is not None and plan.run_spec.horizon.tokens == 100_000
    assert plan.tokens == 100_000
    assert plan.budget_flops == 100_000 * plan.train_flops_per_token


def test_invalid_model_combinations_are_rejected_with_reason(tmp_path: Path) -> None:
    spec = _spec(tmp_path, BASE.replace("[1, 2, 4]", "[1, 2, 8]"))  # top_k 8 > n_experts 4
    plans = _all_plans(spec)
    bad = [p for p in plans if p.sampled["top_k"] == 8]
    assert bad and all(not p.feasible and p.failed_checks == ("model",) and p.run_spec is None for p in bad)
    assert all("top_k=8" in (p.reason or "") and "n_experts=4" in (p.reason or "") for p in bad)
    assert all(p.feasible for p in plans if p.sampled["top_k"] != 8)


@pytest.mark.parametrize(("extra", "check", "fragment"), [
    ("  max_memory: 8MB\n", "memory", "estimated memory"),
    ("  flops_per_token: {max: 4e5}\n", "band", "outside the band"),
    ("  max_steps: 2000\n", "max_steps", "max_steps=2000"),
    ("  min_steps: 1000\n", "min_steps", "min_steps=1000"),
])
def test_budget_checks_reject_some_with_reasons(tmp_path: Path, extra: str, check: str, fragment: str) -> None:
    spec = _spec(tmp_path, BASE.replace("  flops: [2e11, 1e12]\n", "  flops: [2e11, 1e12]\n" + extra))
    plans = _all_plans(spec)
    rejected = [p for p in plans if not p.feasible]
    assert rejected and any(p.feasible for p in plans)
    assert all(p.failed_checks[0] == check and fragment in (p.reason or "") for p in rejected)
    for p in plans:  # the check agrees with the numbers it reports
        b = spec.budget
        over = {"memory": b.max_memory is not None and p.memory_bytes > b.max_memory,
                "band": b.flops_per_token is not None and p.train_flops_per_token > (b.flops_per_token.max or 0),
                "max_steps": b.max_steps is not None and p.steps > b.max_steps,
                "min_steps": p.tokens < b.min_steps * 8 * 64}[check]
        assert over == (not p.feasible)


def test_constraint_and_relative_band(tmp_path: Path) -> None:
    text = BASE + "constraints: ['top_k * iterations <= 4']\n"
    text = text.replace("  flops: [2e11, 1e12]\n", "  flops: [2e11, 1e12]\n  flops_per_token: "
                                                   "{min: 0.8, max: 1.25, relative_to: {iterations: 1, top_k: 2}}\n")
    spec = _spec(tmp_path, text.replace("n_layers: {int: [1, 3]}", "n_layers: {int: [2, 2]}"))
    plans = {(p.sampled["iterations"], p.sampled["top_k"]): p for p in _all_plans(spec)
             if p.budget_index == 0}
    assert plans[(3, 2)].failed_checks[0] == "constraint" and "top_k * iterations <= 4" in (plans[(3, 2)].reason or "")
    reference = plans[(1, 2)].train_flops_per_token
    assert plans[(1, 2)].feasible
    for p in plans.values():
        if "constraint" in p.failed_checks:
            continue
        inside = 0.8 * reference <= p.train_flops_per_token <= 1.25 * reference
        assert inside == p.feasible, (p.sampled, p.train_flops_per_token / reference)


def test_config_hash_deterministic_and_execution_only_excluded(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    low, high = budgets(spec)
    point = {"iterations": 2, "top_k": 2, "n_layers": 2}
    a, b = plan_trial(spec, low, point), plan_trial(spec, low, dict(point))
    assert a.config_hash == b.config_hash and len(a.config_hash) == 16
    assert plan_trial(spec, high, point).config_hash != a.config_hash
    assert plan_trial(spec, low, {**point, "top_k": 1}).config_hash != a.config_hash
    other = _spec(tmp_path, BASE.replace("model: {", "model: {dispatch: loop, attention_impl: explicit, ")
                  .replace("seq_len: 64}", "seq_len: 64, device: cpu, threads: 2}"))
    assert plan_trial(other, budgets(other)[0], point).config_hash == a.config_hash
    lr = _spec(tmp_path, BASE.replace("seq_len: 64}", "seq_len: 64, lr: 0.001}"))
    assert plan_trial(lr, budgets(lr)[0], point).config_hash != a.config_hash


def test_enumeration_counts_and_values(tmp_path: Path) -> None:
    text = BASE + "search: {algorithm: random}\n"
    text = text.replace("  n_layers: {int: [1, 3]}\n", "  n_layers: {int: [1, 3]}\n  d_expert: {int: [16, 100], log: true}\n"
                        "  n_shared: {int: [0, 2], step: 2}\n  train.lr: {float: [1e-4, 1e-2], log: true}\n"
                        "  train.weight_decay: {float: [0.0, 0.1]}\n")
    spec = _spec(tmp_path, text.replace("d_expert: 32, ", ""))
    assert dimension_values(spec.space["d_expert"]) == [16, 32, 64, 100]
    assert dimension_values(spec.space["n_shared"]) == [0, 2]
    assert dimension_values(spec.space["train.lr"]) == [pytest.approx(1e-3)]
    assert dimension_values(spec.space["train.weight_decay"]) == [pytest.approx(0.05)]
    assert grid_size(spec) == 3 * 3 * 3 * 4 * 2
    assert len(_all_plans(spec)) == grid_size(spec) * 2


def test_planned_grid_caps_in_grid_order(tmp_path: Path) -> None:
    spec = _spec(tmp_path, BASE + "search: {algorithm: grid, trials_per_budget: 5}\n")
    first = planned_trials(spec)[0]
    assert first.grid is not None and first.trials == 5 and all(p.feasible for p in first.grid)
    feasible = [p for p in _all_plans(spec) if p.feasible and p.budget_label == first.budget.label]
    assert [p.sampled for p in first.grid] == [p.sampled for p in feasible[:5]]
    assert first.planned_flops == 5 * 2e11
    assert [pb.trials for pb in planned_trials(_spec(tmp_path, BASE))] == [8, 8]  # tpe: the default 8


def test_planned_grid_counts_configs_equal_up_to_execution_fields_once(tmp_path: Path) -> None:
    text = BASE.replace("  n_layers: {int: [1, 3]}\n", "  n_layers: {int: [1, 3]}\n  train.device: {choice: [cpu, auto]}\n")
    spec = _spec(tmp_path, text + "search: {algorithm: grid}\n")
    for pb in planned_trials(spec):
        feasible = [p for p in pb.grid or () if p.feasible]
        assert pb.trials == len(feasible) == len({p.config_hash for p in feasible})
        assert pb.trials == sum(p.feasible for p in _all_plans(spec) if p.budget_label == pb.budget.label) // 2


def test_optuna_space_and_suggest(tmp_path: Path) -> None:
    text = BASE.replace("  n_layers: {int: [1, 3]}\n", "  n_layers: {int: [1, 3]}\n  train.lr: {float: [1e-4, 1e-2], log: true}\n"
                        "  variant:\n    choice:\n      - {router_mode: shared}\n      - {inner_residual: false}\n")
    spec = _spec(tmp_path, text)
    space = optuna_space(spec)
    assert space["iterations"] == optuna.distributions.CategoricalDistribution((1, 2, 3))
    assert space["n_layers"] == optuna.distributions.IntDistribution(1, 3)
    assert space["train.lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert space["variant"] == optuna.distributions.CategoricalDistribution((0, 1))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        point = study.ask(dict(space)).params
        assert set(point) == set(spec.space)
        assert 1e-4 <= point["train.lr"] <= 1e-2
        fields = expand_point(spec, point)
        assert "variant" not in fields and ({"router_mode", "inner_residual"} & set(fields))
        plan = plan_trial(spec, budgets(spec)[0], point)
        assert plan.run_spec is not None and plan.run_spec.train.lr == point["train.lr"]
    with pytest.raises(ValueError, match="choice index"):
        expand_point(spec, {"variant": 2})


def test_flat_params(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    plan = plan_trial(spec, budgets(spec)[0], {"iterations": 2, "top_k": 2, "n_layers": 2})
    assert plan.run_spec is not None
    params = plan.run_spec.flat_params()
    assert params["model.iterations"] == 2 and params["train.batch_size"] == 8
    assert params["horizon.flops"] == 2e11 and params["horizon.steps"] == "None"
    assert params["model.inner_residual"] == "True" and params["data.source"] == "builtin:arithmetic"
    assert {k.split(".")[0] for k in params} == {"model", "train", "data", "horizon"}
    assert all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in params.values())


def test_cli_plan_json_totals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(BASE + "search: {algorithm: tpe, trials_per_budget: 3}\ncluster: {max_concurrent: 2}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["plan", str(path), "--format", "json", "--set", "budget.max_memory=8MB"]) == 0
    out = json.loads(capsys.readouterr().out)
    spec = load_spec(path, ["budget.max_memory=8MB"])
    assert out["spec_hash"] == spec.spec_hash()
    assert out["total_flops"] == pytest.approx(3 * (2e11 + 1e12))
    for level, budget in zip(out["budgets"], budgets(spec), strict=True):
        assert level["n_candidates"] == 27 and level["n_feasible"] + level["n_rejected"] == 27
        assert level["rejected_by"].get("memory", 0) == level["n_rejected"] > 0
        for row in level["candidates"]:
            plan = plan_trial(spec, budget, row["sampled"])
            assert (row["tokens"], row["steps"], row["memory_bytes"], row["feasible"]) == \
                (plan.tokens, plan.steps, plan.memory_bytes, plan.feasible)
    assert out["estimated_wall_s"] > 0
    assert list(tmp_path.iterdir()) == [path]  # plan writes nothing


def test_cli_plan_table_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(BASE + "constraints: ['top_k * iterations <= 4']\n")
    assert main(["plan", str(path), "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert "budget 2e11: 18 feasible, 9 rejected (9 constraint)" in out
    assert "budget 1e12: 18 feasible, 9 rejected (9 constraint)" in out
    assert out.count("constraint 'top_k * iterations") == 18  # the reason, in each rejected row
    assert "estimated wall time" in out
