"""Sweep progress: per-budget counters and the rich table that shows them.

One model (`SweepProgress`) feeds both the live display of `coe-sweep launch` (updated by the driver's
Tune callback) and `coe-sweep status` (rebuilt from MLflow by `progress_from_frame`), so the two print
the same table. No Ray, no MLflow here.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.table import Table
from rich.text import Text

OK_STATUS = "ok"


@dataclass
class BudgetProgress:
    label: str
    budget_flops: float | None = None
    planned_trials: int = 0
    planned_flops: float = 0.0
    done: int = 0  # finished ok
    failed: int = 0  # diverged / oom / failed / errored
    pruned: int = 0  # stopped early by ASHA
    running: int = 0
    rejected: int = 0  # infeasible suggestions never trained
    resumed: int = 0  # finished in an earlier launch of the same sweep
    interrupted: int = 0  # cut short when the sweep was stopped; the relaunch runs them again
    best_val_loss: float | None = None
    best_params: dict[str, Any] | None = None
    spent_flops: float = 0.0

    def add_finished(self, status: str, val_loss: float | None, flops: float,
                     params: dict[str, Any] | None = None, *, pruned: bool = False) -> None:
        if pruned:
            self.pruned += 1
        elif status == OK_STATUS:
            self.done += 1
            if val_loss is not None and math.isfinite(val_loss) and (
                    self.best_val_loss is None or val_loss < self.best_val_loss):
                self.best_val_loss, self.best_params = val_loss, params
        else:
            self.failed += 1
        self.spent_flops += flops or 0.0


@dataclass
class SweepProgress:
    name: str
    budgets: dict[str, BudgetProgress] = field(default_factory=dict)
    start_s: float = field(default_factory=time.time)
    end_s: float | None = None
    simulated: bool = False

    def budget(self, label: str) -> BudgetProgress:
        if label not in self.budgets:
            self.budgets[label] = BudgetProgress(label)
        return self.budgets[label]

    @property
    def planned_flops(self) -> float:
        return sum(b.planned_flops for b in self.budgets.values())

    @property
    def spent_flops(self) -> float:
        return sum(b.spent_flops for b in self.budgets.values())

    @property
    def elapsed_s(self) -> float:
        return (self.end_s or time.time()) - self.start_s

    def eta_s(self) -> float | None:
        """Remaining time, extrapolated from the FLOPs spent in THIS launch (resumed trials excluded)."""
        resumed_flops = sum(b.spent_flops * b.resumed / max(b.done + b.failed + b.pruned, 1)
                            for b in self.budgets.values())
        fresh = self.spent_flops - resumed_flops
        remaining = self.planned_flops - self.spent_flops
        if fresh <= 0 or remaining <= 0:
            return 0.0 if remaining <= 0 and self.planned_flops > 0 else None
        return self.elapsed_s * remaining / fresh


def _fmt_flops(x: float | None) -> str:
    return "-" if not x else f"{x:.2e}"


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render_progress(progress: SweepProgress, *, title: str | None = None) -> Table:
    table = Table(title=title or f"sweep {progress.name}" + (" (simulated)" if progress.simulated else ""),
                  caption=(f"elapsed {_fmt_s(progress.elapsed_s)} · ETA {_fmt_s(progress.eta_s())} · "
                           f"FLOPs {_fmt_flops(progress.spent_flops)} / {_fmt_flops(progress.planned_flops)}"))
    for col in ("budget", "done/planned", "running", "failed", "pruned", "rejected", "best val loss", "FLOPs spent"):
        table.add_column(col, justify="left" if col == "budget" else "right")
    for b in progress.budgets.values():
        frac = f" ({b.spent_flops / b.planned_flops:.0%})" if b.planned_flops else ""
        table.add_row(
            Text(b.label), f"{b.done}/{b.planned_trials or '?'}" + (f" ({b.resumed} resumed)" if b.resumed else "")
            + (f" ({b.interrupted} interrupted)" if b.interrupted else ""),
            str(b.running), str(b.failed), str(b.pruned), str(b.rejected),
            "-" if b.best_val_loss is None else f"{b.best_val_loss:.4f}", f"{_fmt_flops(b.spent_flops)}{frac}")
    return table


def progress_line(progress: SweepProgress) -> str:
    """The live table in one line, for logs: done/planned, running, failed and best loss per budget."""
    parts = []
    for b in progress.budgets.values():
        text = f"{b.label} {b.done + b.failed + b.pruned}/{b.planned_trials or '?'}"
        extras = [f"{n} {what}" for n, what in ((b.running, "running"), (b.failed, "failed"), (b.pruned, "pruned"),
                                                (b.interrupted, "interrupted")) if n]
        if b.best_val_loss is not None:
            extras.append(f"best {b.best_val_loss:.4f}")
        parts.append(text + (f" ({', '.join(extras)})" if extras else ""))
    frac = f" ({progress.spent_flops / progress.planned_flops:.0%})" if progress.planned_flops else ""
    return (f"sweep {progress.name}: " + (" | ".join(parts) or "starting") +
            f" · FLOPs {_fmt_flops(progress.spent_flops)} / {_fmt_flops(progress.planned_flops)}{frac}"
            f" · elapsed {_fmt_s(progress.elapsed_s)} · ETA {_fmt_s(progress.eta_s())}")


class PlainProgress:
    """Context manager: a daemon thread writes `line()` to `stream` every `interval_s` while it is open."""

    def __init__(self, line: Callable[[], str], interval_s: float, stream: TextIO | None = None) -> None:
        self._line, self._interval_s = line, interval_s
        self._stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _emit(self) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(self._line() + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must not kill the sweep
            pass

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._emit()

    def __enter__(self) -> PlainProgress:
        self._thread = threading.Thread(target=self._run, name="coe-sweep-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def progress_from_frame(name: str, frame: Any, *, start_s: float | None = None,
                        end_s: float | None = None) -> SweepProgress:
    """Rebuild progress from a TrackingStore.trials_frame (one row per trial child run)."""
    progress = SweepProgress(name=name)
    if start_s is not None:
        progress.start_s = start_s
    progress.end_s = end_s
    if frame is None or len(frame) == 0:
        return progress
    for row in frame.to_dict("records"):
        label = str(row.get("budget_label") or "?")
        b = progress.budget(label)
        if b.budget_flops is None and _num(row.get("budget_flops")):
            b.budget_flops = float(row["budget_flops"])
        status = row.get("status")
        reason = str(row.get("reason") or "")
        if status in (None, "", "running") or (isinstance(status, float) and math.isnan(status)):
            b.running += 1
            continue
        if status == "killed":  # stopped with the sweep (SweepTracker.mark_interrupted): not a result
            b.interrupted += 1
            continue
        b.add_finished(str(status), _num(row.get("final_val_loss")), _num(row.get("train_flops")) or 0.0,
                       pruned=status == "pruned" or reason.startswith("pruned"))
    return progress


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def render_summary(outcome: Any) -> list[Table]:
    """End-of-launch tables from a SweepOutcome: counts per budget, best (or Pareto) configs, rejections."""
    counts = Table(title=f"sweep {outcome.name}" + (" (simulated)" if outcome.simulated else "")
                   + f": {_fmt_s(outcome.wall_s)}")
    for col in ("budget", "FLOPs", "ok", "failed", "pruned", "rejected", "resumed", "best val loss"):
        counts.add_column(col, justify="left" if col == "budget" else "right")
    best_table = Table(title="best config per budget")
    for col in ("budget", "val loss", "config"):
        best_table.add_column(col)
    failures = Table(title="failed trials")
    for col in ("budget", "config", "status", "reason"):
        failures.add_column(col)
    for b in outcome.budgets.values():
        best = b.best()
        counts.add_row(Text(b.label), _fmt_flops(b.budget_flops), str(len(b.ok)), str(len(b.failed)), str(len(b.pruned)),
                       str(len(b.rejected)), str(sum(t.resumed for t in b.trials)),
                       "-" if best is None else f"{best.val_loss:.4f}")
        if best is not None:
            best_table.add_row(Text(b.label), f"{best.val_loss:.4f}", Text(_fmt_params(best.params)))
        for t in b.failed:
            failures.add_row(Text(b.label), Text(t.config_hash[:10]), Text(t.status), Text((t.reason or "")[:120]))
    tables = [counts, best_table]
    if len(outcome.objectives) > 1:
        pareto = Table(title="Pareto set per budget (" + ", ".join(f"{n} {m}" for n, m in outcome.objectives) + ")")
        for col in ("budget", *[n for n, _ in outcome.objectives], "config"):
            pareto.add_column(col)
        for label in outcome.budgets:
            for t in outcome.pareto(label):
                pareto.add_row(Text(label), *[_fmt_num(t.objectives.get(n)) for n, _ in outcome.objectives],
                               Text(_fmt_params(t.params)))
        tables.append(pareto)
    if failures.row_count:
        tables.append(failures)
    rejected = Table(title="rejected candidates (never trained)")
    for col in ("budget", "config", "reason"):
        rejected.add_column(col)
    for b in outcome.budgets.values():
        for h, reason in list(b.rejected.items())[:20]:
            rejected.add_row(Text(b.label), Text(_fmt_params(b.rejected_params.get(h, {})) or h[:10]),
                             Text(str(reason)[:120]))
    if rejected.row_count:
        tables.append(rejected)
    return tables


def _fmt_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.3e}"
