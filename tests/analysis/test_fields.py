"""Varying fields, the trials table's columns, aggregation over seeds, and routing read back from a frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coe_sweep.analysis.fields import aggregate_by_config, table_columns, varying_fields
from coe_sweep.analysis.routing import routing_by_arm, trial_routing


def frame() -> pd.DataFrame:
    rows = []
    for config, arm, mode, loss in (("aaaa", "coe_2_k", "independent", 1.0), ("bbbb", "coe_shared", "shared", 2.0)):
        for seed in range(3):
            rows.append({"run_id": f"{config}{seed}", "trial_id": f"{config}-s{seed}", "config_hash": config, "arm": arm,
                         "seed": seed, "status": "ok", "budget_label": "1e12", "budget_flops": 1e12,
                         "model.router_mode": mode, "model.d_model": 32, "train.seed": seed, "train.threads": seed + 1,
                         "horizon.flops": 1e12, "final_val_loss": loss + 0.1 * seed, "peak_memory_bytes": 1e6,
                         "routing.L0.C0.entropy": loss + seed, "routing.L0.C0.overlap_next": 0.5,
                         "routing.L0.C1.entropy": 2 * loss, "routing.L0.C0.E0.load": 1.5, "routing.L0.C0.E1.load": 0.5,
                         "routing.mean_entropy": loss})
    rows.append({**rows[0], "run_id": "fail", "trial_id": "cccc-s0", "config_hash": "cccc", "status": "failed",
                 "final_val_loss": np.nan, "model.d_model": 64})
    return pd.DataFrame(rows)


def test_varying_fields_leave_out_seed_execution_fields_and_horizon() -> None:
    assert varying_fields(frame()) == ["model.router_mode", "model.d_model"]  # d_model: the failed trial differs
    assert table_columns(frame())[:5] == ["trial_id", "arm", "seed", "budget_label", "status"]


def test_aggregate_collapses_a_configs_seeds() -> None:
    table = aggregate_by_config(frame())
    assert list(table.config_hash) == ["aaaa", "bbbb"]  # the failed trial is not a result
    assert list(table.n) == [3, 3] and list(table.arm) == ["coe_2_k", "coe_shared"]
    assert table["final_val_loss.mean"].tolist() == pytest.approx([1.1, 2.1])
    assert table["final_val_loss.std"].tolist() == pytest.approx([0.1, 0.1])


def test_routing_grids_and_per_arm_spread() -> None:
    one = trial_routing(frame().iloc[0].to_dict())
    assert (one.n_layers, one.n_iterations) == (1, 2)
    assert one.grids["entropy"] == [[1.0, 2.0]] and one.grids["overlap_next"] == [[0.5, None]]
    assert one.loads == [[[1.5, 0.5], []]] and one.summary == {"mean_entropy": 1.0}
    arms = routing_by_arm(frame())
    assert [a.arm for a in arms] == ["coe_2_k", "coe_shared"] and arms[0].n_trials == 3
    entropy = arms[0].stats["entropy"]
    assert entropy.mean == [[2.0, 2.0]] and entropy.sd[0][0] == pytest.approx(1.0) and entropy.n == [[3, 3]]
    assert arms[0].load_profile == [[[1.5, 0.5], []]]
    assert arms[1].summary["mean_entropy"] == (2.0, 0.0, 3)
