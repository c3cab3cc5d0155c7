"""Arms: named bundle choices, derived arms, the baseline default; seeds in the plan. Refused specs (names
partial, repeated or malformed, an unknown baseline, train.seed set by hand) are in the malformed corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from coe_sweep.cli import main
from coe_sweep.search.candidates import budgets, plan_trial
from coe_sweep.search.feasibility import load_feasible_spec
from coe_sweep.search.planned import planned_trials
from coe_sweep.spec import SweepSpec, load_spec
from coe_sweep.spec.arms import possible_arms

HEAD = """\
name: arms
model: {n_heads: 2, d_expert: 32, n_layers: 1, n_experts: 4}
budget: {flops: [1e11, 3e11]}
train: {batch_size: 8, seq_len: 64}
"""
NAMED = HEAD + """\
space:
  arch:
    choice:
      - {name: moe_4k, iterations: 1, top_k: 4}
      - {name: coe_2_k, iterations: 2, top_k: 2}
  ablation:
    choice:
      - {name: base}
      - {name: shared-router, router_mode: shared}
  d_model: {choice: [32, 64]}
"""


def _spec(tmp_path: Path, text: str) -> SweepSpec:
    path = tmp_path / "arms.yaml"
    path.write_text(text)
    return load_feasible_spec(path)


def test_named_arms_join_names_and_never_enter_the_config_hash(tmp_path: Path) -> None:
    spec = _spec(tmp_path, NAMED)
    assert possible_arms(spec) == ["moe_4k+base", "moe_4k+shared-router", "coe_2_k+base", "coe_2_k+shared-router"]
    assert spec.analysis.baseline == "moe_4k+base"  # no `moe` arm: the first one
    budget = budgets(spec)[0]
    plan = plan_trial(spec, budget, {"arch": 1, "ablation": 1, "d_model": 64})
    assert plan.arm == "coe_2_k+shared-router" and plan.feasible
    assert plan.run_spec is not None and plan.run_spec.model.router_mode == "shared"
    assert "name" not in plan.fields and plan.fields["iterations"] == 2
    renamed = _spec(tmp_path, NAMED.replace("coe_2_k", "coe_two"))
    again = plan_trial(renamed, budgets(renamed)[0], {"arch": 1, "ablation": 1, "d_model": 64})
    assert again.arm == "coe_two+shared-router" and again.config_hash == plan.config_hash


def test_derived_arms_and_the_moe_baseline(tmp_path: Path) -> None:
    spec = _spec(tmp_path, HEAD + "space:\n  iterations: {choice: [1, 2, 3]}\n  top_k: {choice: [1, 2]}\n"
                 "  d_model: {choice: [32]}\n")
    assert possible_arms(spec) == ["moe", "coe-C2", "coe-C3"] and spec.analysis.baseline == "moe"
    plans = {p.sampled["iterations"]: p.arm for p in
             (plan_trial(spec, budgets(spec)[0], {"iterations": c, "top_k": 1, "d_model": 32}) for c in (1, 2, 3))}
    assert plans == {1: "moe", 2: "coe-C2", 3: "coe-C3"}
    dense = _spec(tmp_path, HEAD.replace("n_experts: 4", "n_experts: 2") + "space:\n  variant:\n    choice:\n"
                  "      - {dense: true, top_k: 2}\n      - {iterations: 2, top_k: 1}\n  d_model: {choice: [32]}\n"
                  "analysis: {baseline: coe-C2}\n")
    assert possible_arms(dense) == ["dense", "coe-C2"] and dense.analysis.baseline == "coe-C2"


def test_seeds_multiply_planned_trials_and_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = NAMED + "search: {algorithm: grid, seeds: 3}\n"
    spec = _spec(tmp_path, text)
    first = planned_trials(spec)[0]
    assert first.configs == 8 and first.seeds == 3 and first.trials == 24
    assert first.planned_flops == 24 * 1e11
    out = tmp_path / "again.yaml"
    out.write_text(spec.to_yaml())
    assert load_spec(out) == spec and "seed:" not in spec.to_yaml().split("train:")[1].split("\n\n")[0]
    assert main(["plan", str(tmp_path / "arms.yaml"), "--format", "json"]) == 0
    import json

    plan = json.loads(capsys.readouterr().out)
    assert plan["seeds"] == 3 and plan["total_trials"] == 48 and plan["baseline"] == "moe_4k+base"
    level = plan["budgets"][0]
    assert (level["configs"], level["seeds"], level["trials"]) == (8, 3, 24)
    assert {c["arm"] for c in level["candidates"]} == set(plan["arms"])
