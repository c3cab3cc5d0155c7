"""Progress model and its table (shared by `launch`'s live display and `status`)."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pandas as pd
from rich.console import Console

from coe_sweep.console import PIPE_WIDTH
from coe_sweep.sweep.progress import (
    PlainProgress,
    SweepProgress,
    progress_from_frame,
    progress_line,
    render_progress,
)
from coe_sweep.trial import TrialStatus


def _text(table) -> str:  # noqa: ANN001
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_counts_best_and_eta() -> None:
    p = SweepProgress("s", start_s=0.0, end_s=10.0)
    b = p.budget("1e12")
    b.planned_trials, b.planned_flops = 4, 4e12
    b.add_finished(TrialStatus.OK, 3.2, 1e12, {"top_k": 2})
    b.add_finished(TrialStatus.OK, 3.0, 1e12, {"top_k": 4})
    b.add_finished(TrialStatus.DIVERGED, None, 1e11)
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
        {"budget_label": "b", "budget_flops": 1e13, "status": "pruned", "reason": "pruned: ASHA stopped it",
         "final_val_loss": None, "train_flops": 2e12},
        {"budget_label": "b", "budget_flops": 1e13, "status": "killed", "reason": "interrupted at step 40",
         "final_val_loss": None, "train_flops": None},
    ])
    p = progress_from_frame("s", frame)
    a, b = p.budgets["a"], p.budgets["b"]
    assert (a.done, a.failed, a.best_val_loss, a.budget_flops) == (1, 1, 2.0, 1e12)
    assert (b.running, b.pruned, b.failed, b.interrupted, b.spent_flops) == (1, 1, 0, 1, 2e12)
    assert "0/? (1 interrupted)" in _text(render_progress(p))


def test_progress_line_says_what_the_table_says() -> None:
    p = SweepProgress("iso", start_s=0.0, end_s=10.0)
    a, b = p.budget("2e11"), p.budget("6e11")
    a.planned_trials, a.planned_flops, b.planned_trials, b.planned_flops = 2, 4e11, 2, 1.2e12
    a.add_finished(TrialStatus.OK, 0.4312, 2e11)
    a.add_finished(TrialStatus.OOM, None, 0.0)
    b.running = 1
    line = progress_line(p)
    assert line.startswith("sweep iso: ")
    assert "2e11 2/2 (1 failed, best 0.4312)" in line and "6e11 0/2 (1 running)" in line
    assert "FLOPs 2.00e+11 / 1.60e+12 (12%)" in line and "elapsed 0m10s" in line and "\n" not in line


def test_plain_progress_writes_lines_until_closed() -> None:
    out, calls = io.StringIO(), []

    def line() -> str:
        calls.append(1)
        return f"tick {len(calls)}"

    with PlainProgress(line, 0.05, out):
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    written = len(calls)
    time.sleep(0.2)
    assert written >= 3 and len(calls) == written, "no line after the context closed"
    assert out.getvalue().splitlines()[:3] == ["tick 1", "tick 2", "tick 3"]


def test_piped_consoles_are_wide_enough_for_tables() -> None:
    code = ("from coe_sweep.console import make_console; import sys; "
            "print(make_console().width, make_console(stderr=True).width, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.stderr.split() == [str(PIPE_WIDTH)] * 2
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "101"})
    assert done.stderr.split() == ["101", "101"]
