"""Arm comparisons on small hand-made frames: which cells are compared, baselines, the three meanings of equal."""

from __future__ import annotations

import pandas as pd
import pytest

from coe_sweep.analysis import compare_arms
from coe_sweep.analysis.arms import cells, trial_keys
from coe_sweep.analysis.paired import paired_difference

COLUMNS = ["run_id", "config_hash", "arm", "seed", "status", "budget_label", "budget_flops", "final_val_loss",
           "train_flops", "peak_memory_bytes", "wall_s", "model.iterations"]


def _frame() -> pd.DataFrame:
    """moe_2k (baseline), coe_2_k and width_x2 at two budgets, seeds 0-2; one failed and one NaN row."""
    losses = {  # (arm, budget) -> per-seed loss
        ("moe_2k", "1e12"): (1.15, 1.16, 1.12), ("coe_2_k", "1e12"): (1.10, 1.12, 1.09),
        ("width_x2", "1e12"): (1.149, 1.163, 1.118),
        ("moe_2k", "3e12"): (1.00, 1.01, 0.99), ("coe_2_k", "3e12"): (0.98, 1.02, 0.97),
    }
    memory = {"moe_2k": 100.0, "coe_2_k": 120.0, "width_x2": 160.0}
    wall = {"moe_2k": 10.0, "coe_2_k": 13.0, "width_x2": 15.0}
    iterations = {"moe_2k": 1, "coe_2_k": 2, "width_x2": 1}
    rows = []
    for (arm, label), values in losses.items():
        flops = float(label)
        for seed, loss in enumerate(values):
            rows.append((f"{arm}-{label}-{seed}", f"h-{arm}-{label}", arm, seed, "ok", label, flops, loss, flops,
                         memory[arm], wall[arm] * flops / 1e12, iterations[arm]))
    rows.append(("x1", "h-coe_2_k-1e12", "coe_2_k", 3, "failed", "1e12", 1e12, 0.1, 1e12, 120.0, 1.0, 2))
    rows.append(("x2", "h-coe_2_k-1e12", "coe_2_k", 4, "ok", "1e12", 1e12, float("nan"), 1e12, 120.0, 1.0, 2))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_every_arm_against_the_baseline_per_budget() -> None:
    result = compare_arms(_frame(), "moe_2k")
    assert result.baseline == "moe_2k" and result.arms == ["moe_2k", "coe_2_k", "width_x2"]
    first, second = result.budgets
    assert (first.budget_label, second.budget_label) == ("1e12", "3e12")
    base, coe, width = first.arms
    assert base.arm == "moe_2k" and base.diff is None
    assert base.summary.mean == pytest.approx((1.15 + 1.16 + 1.12) / 3)
    assert coe.cell.seeds == (0, 1, 2)  # the failed seed 3 and the NaN seed 4 are not trials to compare
    expected = paired_difference((0, 1, 2), (1.10, 1.12, 1.09), (0, 1, 2), (1.15, 1.16, 1.12))
    assert coe.diff == expected and coe.diff.text == "better (95% CI -0.065 to -0.015)"
    assert width.diff is not None and width.diff.verdict == "no detectable difference"
    assert coe.peak_memory_ratio == pytest.approx(1.2) and coe.wall_s_ratio == pytest.approx(1.3)
    assert coe.train_flops_ratio == pytest.approx(1.0) and coe.notes == []
    assert [a.arm for a in second.arms] == ["moe_2k", "coe_2_k"]  # width_x2 did not run at 3e12
    assert result.multipliers == [] and any("2 budget level(s)" in n for n in result.notes)


def test_baseline_default_and_bad_baseline() -> None:
    frame = _frame()
    assert compare_arms(frame).baseline == "moe_2k"  # no arm called `moe`: the first arm
    assert compare_arms(frame, "coe_2_k").budgets[0].arms[0].arm == "coe_2_k"
    with pytest.raises(ValueError, match=r"baseline='moe'.*expected one of moe_2k, coe_2_k, width_x2"):
        compare_arms(frame, "moe")
    with pytest.raises(ValueError, match="level=1.5"):
        compare_arms(frame, level=1.5)
    empty = compare_arms(frame.assign(status="failed"))
    assert empty.baseline is None and empty.budgets == [] and "no finished trials" in empty.notes[0]


def test_equal_memory_and_equal_wall_time() -> None:
    result = compare_arms(_frame(), "moe_2k")
    # memory is the same at every budget, so each arm's front is its best (largest-budget) config;
    # caps: 100 (only the baseline fits: skipped), 120 (coe fits), 160 (width fits too)
    caps = [(c.cap, [a.arm for a in c.arms], c.missing) for c in result.equal_memory]
    assert caps == [(120.0, ["moe_2k", "coe_2_k"], ["width_x2"]), (160.0, ["moe_2k", "coe_2_k", "width_x2"], [])]
    at_120 = result.equal_memory[0]
    assert [a.cell.budget_label for a in at_120.arms] == ["3e12", "3e12"]
    assert at_120.arms[1].diff == paired_difference((0, 1, 2), (0.98, 1.02, 0.97), (0, 1, 2), (1.00, 1.01, 0.99))
    # wall time grows with the budget: within 13 s coe has only its 1e12 trials, the baseline its 1e12 ones
    by_cap = {c.cap: {a.arm: a.cell.budget_label for a in c.arms} for c in result.equal_wall}
    assert by_cap[13.0] == {"moe_2k": "1e12", "coe_2_k": "1e12"}
    assert by_cap[30.0] == {"moe_2k": "3e12", "coe_2_k": "1e12", "width_x2": "1e12"}


def test_not_iso_compute_and_unpaired_seeds_are_flagged() -> None:
    frame = _frame()
    frame.loc[frame.arm == "coe_2_k", "train_flops"] *= 1.2
    frame = frame[~((frame.arm == "coe_2_k") & (frame.seed == 2))]
    coe = compare_arms(frame, "moe_2k").budgets[0].arms[1]
    assert coe.diff is not None and coe.diff.seeds == (0, 1)
    assert any("not iso-compute" in n for n in coe.notes)
    assert any("seed(s) [2] ran on one side only" in n for n in coe.notes)


def test_frames_without_arm_and_seed_columns_derive_them() -> None:
    """Before trials carried arm/seed: arm from the architecture, seed from train.seed, the config without it."""
    rows = []
    for it, family in ((1, "moe"), (2, "coe")):
        for d_model in (32, 64):
            for seed in (0, 1, 2):
                loss = 1.0 + 0.001 * d_model / 32 - 0.01 * (it - 1) + 0.002 * seed
                rows.append({"run_id": f"r{it}{d_model}{seed}", "config_hash": f"h{it}{d_model}{seed}",  # seed hashed in
                             "status": "ok", "budget_label": "1e12", "budget_flops": 1e12, "family": family,
                             "final_val_loss": loss, "model.iterations": it, "model.d_model": d_model,
                             "train.seed": seed, "train.lr": 3e-3})
    frame = pd.DataFrame(rows)
    keys = trial_keys(frame)
    assert set(keys["arm"]) == {"moe", "coe-C2"} and sorted(set(keys["seed"])) == [0, 1, 2]
    assert keys["config"].nunique() == 4  # two widths per arm, seeds grouped
    assert len(cells(frame)) == 4 and all(c.n == 3 for c in cells(frame))
    result = compare_arms(frame)
    assert result.baseline == "moe"
    base, coe = result.budgets[0].arms
    assert base.cell.describe["d_model"] == 32 and base.n_configs == 2  # the best width by mean
    assert coe.diff is not None and coe.diff.mean == pytest.approx(-0.01)
    assert "best of 2 configs by mean over seeds" in coe.notes
