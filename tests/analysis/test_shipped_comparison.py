"""search_spaces/coe_vs_moe.yaml: the paper's arms, named, 3 seeds, baseline moe_2k, and every question of
the comparison answerable on it (checked on the simulated law over the file's own arms and levels).

tests/spec/test_load.py loads the file through the spec schema (named bundle choices, search.seeds,
analysis.baseline); here the YAML is read as data and the comparison is run on the simulated law.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from coe_sweep.analysis import compare_arms
from runners.simulated import SimulationLaw

from .simulated import design, trials_frame

SPEC = Path(__file__).resolve().parents[2] / "search_spaces" / "coe_vs_moe.yaml"
PAPER_ARMS = ["moe_2k", "coe_2_k", "moe_width_x2", "moe_width_x3", "moe_depth_x2", "coe_shared_router",
              "coe_no_inner_residual", "coe_outer_residual"]


def shipped() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


def test_the_papers_arms_named_with_three_seeds_and_a_baseline() -> None:
    data = shipped()
    choices = data["space"]["variant"]["choice"]
    assert [c["name"] for c in choices] == PAPER_ARMS
    fields = {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in choices}
    assert fields["moe_2k"] == {"iterations": 1, "top_k": 4, "n_layers": 2}
    assert fields["coe_2_k"] == {"iterations": 2, "top_k": 2, "n_layers": 2}  # C x K = the baseline's K
    assert fields["moe_width_x2"]["top_k"] == 8 and fields["moe_width_x3"]["top_k"] == 12
    assert fields["moe_depth_x2"]["n_layers"] == 4
    assert data["search"] == {"algorithm": "grid", "seeds": 3}
    assert data["analysis"] == {"baseline": "moe_2k"}
    assert 2 <= len(data["budget"]["flops"]) <= 3


def test_every_question_is_answered_on_the_shipped_design() -> None:
    """Per level a paired difference with an interval for every arm; multipliers (3 levels); equal memory."""
    data = shipped()
    arms = {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in data["space"]["variant"]["choice"]}
    model = {k: v for k, v in data["model"].items() if k != "d_model"}
    d = design(arms, SimulationLaw(), levels=[float(v) for v in data["budget"]["flops"]],
               d_models=(data["model"]["d_model"],), model=model)
    result = compare_arms(trials_frame(d, data["search"]["seeds"], np.random.default_rng(0)),
                          data["analysis"]["baseline"], n_boot=200)
    assert result.arms == PAPER_ARMS
    assert len(result.budgets) == len(data["budget"]["flops"])
    for budget in result.budgets:
        assert [a.arm for a in budget.arms] == PAPER_ARMS
        for arm in budget.arms[1:]:
            assert arm.diff is not None and arm.diff.n == 3 and arm.diff.ci is not None
            assert arm.train_flops_ratio is not None and abs(arm.train_flops_ratio - 1) < 0.05  # iso-compute
    assert {m.arm for m in result.multipliers} == set(PAPER_ARMS[1:])
    assert all(m.ci is not None for m in result.multipliers if m.multiplier is not None)
    assert result.equal_memory and {a.arm for c in result.equal_memory for a in c.arms} == set(PAPER_ARMS)
