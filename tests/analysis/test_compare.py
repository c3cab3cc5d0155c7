"""CoE vs MoE per budget on a small hand-made frame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coe_sweep.analysis import coe_vs_moe, comparison_frame


def _frame() -> pd.DataFrame:
    rows = [
        # budget 1e13: best CoE is c2 (1.10), best MoE is m2 (1.15); c0 is better but failed; c3 NaN loss
        ("c1", "1e13", 1e13, "coe", "ok", 1.20, 210, 1.00e13, 2000, 800, "2"),
        ("c2", "1e13", 1e13, "coe", "ok", 1.10, 200, 1.01e13, 2200, 900, "2"),
        ("c0", "1e13", 1e13, "coe", "failed", 0.50, 100, 1.0e13, 2000, 800, "2"),
        ("c3", "1e13", 1e13, "coe", "ok", np.nan, 100, 1.0e13, 2000, 800, "3"),
        ("m1", "1e13", 1e13, "moe", "ok", 1.30, 140, 1.00e13, 4000, 700, "1"),
        ("m2", "1e13", 1e13, "moe", "ok", 1.15, 150, 1.00e13, 4400, 800, "1"),
        ("d1", "1e13", 1e13, "dense", "ok", 1.00, 100, 1.00e13, 500, 500, "1"),  # not part of the comparison
        # budget 1e14: MoE only
        ("m3", "1e14", 1e14, "moe", "ok", 1.05, 300, 1.00e14, 8000, 1600, "1"),
    ]
    return pd.DataFrame(rows, columns=["run_id", "budget_label", "budget_flops", "family", "status",
                                       "final_val_loss", "peak_memory_bytes", "train_flops",
                                       "params_total", "params_active", "model.iterations"])


def test_best_of_each_family_side_by_side() -> None:
    first, second = coe_vs_moe(_frame())
    assert (first.budget_label, second.budget_label) == ("1e13", "1e14")
    assert first.coe["run_id"] == "c2" and first.moe["run_id"] == "m2"  # type: ignore[index]
    assert first.n_coe == 2 and first.n_moe == 2  # failed and NaN rows are not counted
    assert first.winner == "coe"
    assert first.loss_diff == pytest.approx(1.10 - 1.15)
    assert first.loss_rel_diff == pytest.approx(1.10 / 1.15 - 1)
    assert first.peak_memory_diff_bytes == 50 and first.peak_memory_ratio == pytest.approx(200 / 150)
    assert first.train_flops_diff == pytest.approx(0.01e13) and first.train_flops_ratio == pytest.approx(1.01)
    assert first.params_total_diff == -2200 and first.params_active_diff == 100
    assert first.coe["model.iterations"] == 2.0  # type: ignore[index]
    assert first.notes == []  # both sides measured, train FLOPs within 5%
    assert first.estimated_memory_diff_bytes is None  # no estimate column in this frame
    assert second.coe is None and second.winner is None and second.loss_diff is None
    assert second.notes == ["no ok CoE trial with a finite loss at this budget"]
    json.dumps([c.to_dict() for c in (first, second)], allow_nan=False)


def test_not_iso_compute_is_flagged_and_table_flattens() -> None:
    df = _frame()
    df.loc[df.run_id == "c2", "train_flops"] = 1.2e13
    first, _ = coe_vs_moe(df)
    assert any("not iso-compute" in n for n in first.notes)
    table = comparison_frame(coe_vs_moe(df))
    assert list(table.budget_label) == ["1e13", "1e14"]
    assert table.loc[0, "coe_run_id"] == "c2" and table.loc[0, "moe_final_val_loss"] == 1.15
    assert pd.isna(table.loc[1, "coe_run_id"])


def test_family_derived_from_iterations_and_empty_frames() -> None:
    df = _frame().drop(columns=["family"])
    df = df[df.run_id != "d1"]  # without a family column, dense cannot be told apart here
    first, _ = coe_vs_moe(df)
    assert first.coe["run_id"] == "c2" and first.moe["run_id"] == "m2"  # type: ignore[index]
    partial = _frame()
    partial.loc[partial.run_id == "c2", "family"] = None  # a missing tag falls back to iterations
    assert coe_vs_moe(partial)[0].coe["run_id"] == "c2"  # type: ignore[index]
    assert coe_vs_moe(_frame().assign(status="failed")) == []
    with pytest.raises(ValueError, match="final_val_loss"):
        coe_vs_moe(pd.DataFrame({"budget_label": ["a"]}))
