"""Budget levels: trials without a label are binned onto the nearest level within a log-FLOPs tolerance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coe_sweep.analysis import columns as C
from coe_sweep.analysis import isoflop_profiles
from coe_sweep.analysis.levels import Level, assign_levels, cluster_levels, nearest_level

from .synthetic import scaling_frame

BUDGETS = [1e13, 3e13, 1e14]


def _measured_only(jitter: float, seed: int = 0) -> pd.DataFrame:
    """The synthetic sweep as an import without labels: each trial's FLOPs measured within +-jitter."""
    df = scaling_frame(BUDGETS, lambda c: 2.0 * c**0.5, lambda c: 1.5 + 40.0 * c**-0.15, noise=0.002, seed=seed)
    rng = np.random.default_rng(seed)
    return df.assign(train_flops=df["budget_flops"] * np.exp(rng.uniform(-jitter, jitter, len(df))))


def test_measured_flops_without_labels_are_binned_not_one_point_budgets() -> None:
    """Fix: every trial with its own measured FLOPs (no label) used to be a budget of its own."""
    df = _measured_only(0.05).drop(columns=["budget_label"]).assign(budget_flops=lambda d: d["train_flops"])
    profiles = isoflop_profiles(df, n_boot=50)
    assert [p.n_points for p in profiles] == [9, 9, 9]
    assert [p.budget_flops for p in profiles] == pytest.approx(BUDGETS, rel=0.05)
    assert all(p.ok for p in profiles)


def test_missing_labels_join_the_labelled_level_or_stay_off() -> None:
    """Fix: rows whose label is missing (None) used to form one 'None' budget spanning every level."""
    df = _measured_only(0.05)
    df["budget_flops"] = np.where(df.index % 3 == 0, np.nan, df["budget_flops"])
    df["budget_label"] = np.where(df.index % 3 == 0, None, df["budget_label"])
    far = df.iloc[[0]].assign(train_flops=5e13, budget_label=None, budget_flops=np.nan, run_id="far")
    groups = C.budget_groups(pd.concat([df, far], ignore_index=True))
    assert [label for label, _, _ in groups] == ["1e+13", "3e+13", "1e+14"]
    assert [len(rows) for _, _, rows in groups] == [9, 9, 9]  # 'far' (x1.67 from 3e13) is off every level
    assert [flops for _, flops, _ in groups] == [1e13, 3e13, 1e14]


def test_rule_pieces() -> None:
    flops = np.array([0.95e18, 1.0e18, 1.04e18, 2.9e18, 3.0e18, 3.2e18, 1e19, 1e19, 1.01e19, 3.9e19])
    levels = cluster_levels(flops, tol_log=0.2)
    assert [lv.label for lv in levels] == ["1e+18", "3e+18", "1e+19"]  # the lone 3.9e19 is no level
    chain = np.geomspace(1e18, 4e18, 40)  # evenly spread FLOPs: single linkage would make one level of them
    assert len(cluster_levels(chain, tol_log=0.2)) >= 3
    idx = nearest_level(np.array([1.1e18, 1.5e18, np.nan, -1.0]), [Level("a", 1e18), Level("b", 3e18)], 0.2)
    assert idx.tolist() == [0, -1, -1, -1]
    labels, found = assign_levels(["x", None, "None", None], np.array([1e18, 1.1e18, 2e18, 1e12]), 0.2)
    assert labels == ["x", "x", None, None] and found == [Level("x", 1e18)]
    with pytest.raises(ValueError, match="tol_log=0"):
        nearest_level(flops, levels, 0)
