"""Sweep progress: per-budget counters and the rich table that shows them.

One model (`SweepProgress`) feeds both the live display of `coe-sweep launch` (updated by the driver's
Tune callback) and `coe-sweep status` (rebuilt from MLflow by `progress_from_frame`), so the two print
the same table. No Ray, and MLflow only through the TrackingStore `status_progress` is given.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd
import yaml
from rich.table import Table
from rich.text import Text

from coe_sweep.trial import TrialStatus
from coe_sweep.units import format_elapsed, format_flops

if TYPE_CHECKING:
    from coe_sweep.spec.schema import SweepSpec
    from coe_sweep.tracking import SweepSummary, TrackingStore

log = logging.getLogger(__name__)


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

    def add_finished(self, status: TrialStatus, val_loss: float | None, flops: float,
                     params: dict[str, Any] | None = None) -> None:
        if status == TrialStatus.PRUNED:
            self.pruned += 1
        elif status == TrialStatus.OK:
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


def render_progress(progress: SweepProgress, *, title: str | None = None) -> Table:
    table = Table(title=title or f"sweep {progress.name}" + (" (simulated)" if progress.simulated else ""),
                  caption=(f"elapsed {format_elapsed(progress.elapsed_s)} · ETA {format_elapsed(progress.eta_s())} · "
                           f"FLOPs {format_flops(progress.spent_flops)} / {format_flops(progress.planned_flops)}"))
    for col in ("budget", "done/planned", "running", "failed", "pruned", "rejected", "best val loss", "FLOPs spent"):
        table.add_column(col, justify="left" if col == "budget" else "right")
    for b in progress.budgets.values():
        frac = f" ({b.spent_flops / b.planned_flops:.0%})" if b.planned_flops else ""
        table.add_row(
            Text(b.label), f"{b.done}/{b.planned_trials or '?'}" + (f" ({b.resumed} resumed)" if b.resumed else "")
            + (f" ({b.interrupted} interrupted)" if b.interrupted else ""),
            str(b.running), str(b.failed), str(b.pruned), str(b.rejected),
            "-" if b.best_val_loss is None else f"{b.best_val_loss:.4f}", f"{format_flops(b.spent_flops)}{frac}")
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
            f" · FLOPs {format_flops(progress.spent_flops)} / {format_flops(progress.planned_flops)}{frac}"
            f" · elapsed {format_elapsed(progress.elapsed_s)} · ETA {format_elapsed(progress.eta_s())}")


class PlainProgress:
    """Context manager: a daemon thread writes `line()` to `stream` every `interval_s` while it is open, and
    one last line when it closes (the sweep's final state ends the log)."""

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
        self._emit()


def progress_from_frame(name: str, frame: pd.DataFrame | None, *, start_s: float | None = None,
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
        raw = row.get("status")
        status = TrialStatus.RUNNING if raw in (None, "") or (isinstance(raw, float) and math.isnan(raw)) \
            else next((s for s in TrialStatus if s.value == raw), TrialStatus.FAILED)
        if status == TrialStatus.RUNNING:
            b.running += 1
        elif status == TrialStatus.KILLED:  # stopped with the sweep (SweepTracker.mark_interrupted): no result
            b.interrupted += 1
        else:
            b.add_finished(status, _num(row.get("final_val_loss")), _num(row.get("train_flops")) or 0.0)
    return progress


def status_progress(store: TrackingStore, sweep: SweepSummary, frame: pd.DataFrame,
                    spec: SweepSpec | None) -> SweepProgress:
    """What `coe-sweep status` shows: the trials MLflow holds, the rejected counts launch logged on the parent
    run, and the planned trials of `spec` (None: the spec the sweep logged, read back)."""
    from coe_sweep.search.planned import planned_trials
    from coe_sweep.spec import validate_spec_data
    from coe_sweep.tracking import NotFound, TrackingError
    from coe_sweep.tracking.names import REJECTED_PREFIX

    progress = progress_from_frame(sweep.name, frame, start_s=(sweep.start_time or 0) / 1000 or None,
                                   end_s=(sweep.end_time / 1000) if sweep.end_time else None)
    progress.simulated = sweep.simulated
    try:  # candidates refused before training have no child run; launch counts them on the parent run
        for key, value in store.sweep_metrics(sweep.id).items():
            if key.startswith(REJECTED_PREFIX):
                progress.budget(key[len(REJECTED_PREFIX):]).rejected = int(value)
    except (TrackingError, NotFound) as exc:
        log.debug("no rejected counts: %s", exc)
    if spec is None:  # the spec the sweep logged gives the planned trials and FLOPs
        try:
            spec = validate_spec_data(yaml.safe_load(store.spec_yaml(sweep.id)), file="spec.yaml (MLflow)")
        except Exception as exc:  # noqa: BLE001 - planned figures are optional; progress is still shown
            log.debug("no planned figures: %s", exc)
    for planned in planned_trials(spec) if spec is not None else []:
        bp = progress.budget(planned.budget.label)
        bp.budget_flops = bp.budget_flops or planned.budget.flops
        bp.planned_trials, bp.planned_flops = planned.trials, planned.planned_flops
    return progress


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v
