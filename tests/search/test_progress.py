"""Progress model and its table (shared by `launch`'s live display and `status`)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console

from coe_sweep.search.progress import SweepProgress, progress_from_frame, render_progress


def _text(table) -> str:  # noqa: ANN001
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_counts_best_and_eta() -> None:
    p = SweepProgress("s", start_s=0.0, end_s=10.0)
    b = p.budget("1e12")
    b.planned_trials, b.planned_flops = 4, 4e12
    b.add_finished("ok", 3.2, 1e12, {"top_k": 2})
    b.add_finished("ok", 3.0, 1e12, {"top_k": 4})
    b.add_finished("diverged", None, 1e11)
    assert (b.done, b.failed, b.best_val_loss, b.best_params) == (2, 1, 3.0, {"top_k": 4})
    # 2.1e12 of 4e12 FLOPs in 10 s: about 9 s left
    assert abs(p.eta_s() - 10 * 1.9e12 / 2.1e12) < 1e-6
    text = _text(render_progress(p))
    assert "1e12" in text and "2/4" in text and "3.0000" in text and "2.10e+12 (52%)" in text


def test_progress_from_trials_frame() -> None:
    frame = pd.DataFrame([
        {"budget_label": "a", "budget_flops": 1e12, "status": "ok", "reason": None, "final_val_loss": 2.0,
         "train_flops": 1e12},
        {"budget_label": "a", "budget_flops": 1e12, "status": "oom", "reason": "oom", "final_val_loss": None,
         "train_flops": 0.0},
        {"budget_label": "b", "budget_flops": 1e13, "status": "running", "reason": None, "final_val_loss": None,
         "train_flops": None},
        {"budget_label": "b", "budget_flops": 1e13, "status": "failed", "reason": "pruned: ASHA stopped it",
         "final_val_loss": None, "train_flops": 2e12},
    ])
    p = progress_from_frame("s", frame)
    a, b = p.budgets["a"], p.budgets["b"]
    assert (a.done, a.failed, a.best_val_loss, a.budget_flops) == (1, 1, 2.0, 1e12)
    assert (b.running, b.pruned, b.failed, b.spent_flops) == (1, 1, 0, 2e12)
