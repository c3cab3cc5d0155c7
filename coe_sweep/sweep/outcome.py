"""What `launch` returns: the finished trials per budget, read off the driver's ledger, and its summary tables.

Built once, at the end of a launch, from the ledger (coe_sweep.sweep.ledger): every trial is a
coe_sweep.trial.FinishedTrial (identity + RunResult), never a copy of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from coe_sweep.sweep.ledger import Ledger, Rejection, TrialKey
from coe_sweep.trial import PRIMARY_OBJECTIVE, FinishedTrial, TrialStatus, objective_value
from coe_sweep.units import format_elapsed, format_flops

Objectives = list[tuple[str, str]]


@dataclass
class BudgetOutcome:
    label: str
    budget_flops: float | None
    trials: list[FinishedTrial] = field(default_factory=list)
    resumed: set[TrialKey] = field(default_factory=set)  # finished in an earlier launch of this sweep
    rejected: dict[str, Rejection] = field(default_factory=dict)  # config hash -> why it was never trained
    exhausted: bool = False  # the searcher found no new feasible config within its attempts
    interrupted: list[TrialKey] = field(default_factory=list)  # cut short by a sweep stop (rerun)

    @property
    def ok(self) -> list[FinishedTrial]:
        return [t for t in self.trials if t.result.status == TrialStatus.OK]

    @property
    def failed(self) -> list[FinishedTrial]:
        return [t for t in self.trials if t.result.status.is_failure]

    @property
    def pruned(self) -> list[FinishedTrial]:
        return [t for t in self.trials if t.result.status == TrialStatus.PRUNED]

    def best(self, objective: str = PRIMARY_OBJECTIVE) -> FinishedTrial | None:
        scored = [(value, t) for t in self.ok if (value := objective_value(t.result, objective)) is not None]
        return min(scored, key=lambda pair: pair[0], default=(None, None))[1]


@dataclass
class SweepOutcome:
    name: str
    spec_hash: str
    tracking_uri: str
    storage_dir: Path
    objectives: Objectives
    budgets: dict[str, BudgetOutcome]
    simulated: bool
    wall_s: float
    stopped_reason: str | None = None  # set when --max-failures (or a full disk) stopped the sweep
    tracking_pending: int = 0  # MLflow writes still in the tracking journal (the store was down at the end)
    tracking_journal: Path | None = None  # where they are kept; the next launch replays them
    busy_slot_s: float = 0.0  # slot-seconds trials held (start to end), this launch
    slots: int = 1  # trials run at once
    trials_span_s: float = 0.0  # from this launch's first trial start to its last trial end

    @property
    def efficiency(self) -> float:
        """The sweep's own efficiency: busy slot-seconds / (slots x the launch's wall seconds)."""
        return self.busy_slot_s / (self.slots * self.wall_s) if self.wall_s > 0 and self.slots > 0 else 0.0

    @property
    def idle_slot_s(self) -> float:
        """Slot-seconds no trial held during the launch (start-up included)."""
        return max(0.0, self.slots * self.wall_s - self.busy_slot_s)

    @property
    def trials_efficiency(self) -> float:
        """Busy slot-seconds / (slots x the trials' span): the efficiency without the fixed start-up."""
        span = self.slots * self.trials_span_s
        return min(1.0, self.busy_slot_s / span) if span > 0 else 0.0

    @classmethod
    def from_ledger(cls, ledger: Ledger, budget_flops: dict[str, float | None], **fields: Any) -> SweepOutcome:
        budgets = {label: BudgetOutcome(label, flops, rejected=dict(ledger.rejected.get(label, {})),
                                        exhausted=label in ledger.exhausted,
                                        interrupted=list(ledger.interrupted.get(label, [])))
                   for label, flops in budget_flops.items()}
        for key, trial in ledger.finished.items():
            budget = budgets.get(trial.identity.budget_label)
            if budget is not None:
                budget.trials.append(trial)
                if key in ledger.resumed:
                    budget.resumed.add(key)
        return cls(budgets=budgets, **fields)

    @property
    def trials(self) -> list[FinishedTrial]:
        return [t for b in self.budgets.values() for t in b.trials]

    @property
    def n_failed(self) -> int:
        return sum(len(b.failed) for b in self.budgets.values())

    @property
    def n_resumed(self) -> int:
        return sum(len(b.resumed) for b in self.budgets.values())

    @property
    def exit_code(self) -> int:
        """0 when every trial is ok (or pruned by ASHA) and tracked; 1 when anything failed, the sweep was
        stopped, or MLflow writes are still waiting in the tracking journal."""
        return 1 if self.n_failed or self.stopped_reason or self.tracking_pending else 0

    def pareto(self, label: str) -> list[FinishedTrial]:
        """Non-dominated ok trials of one budget under the sweep's objectives (min/max per objective)."""
        def key(t: FinishedTrial) -> list[float] | None:
            values = [objective_value(t.result, n) for n, _ in self.objectives]
            if any(v is None for v in values):
                return None
            return [v if m == "min" else -v for v, (_, m) in zip(values, self.objectives, strict=True)
                    if v is not None]

        keyed = [(k, t) for t in self.budgets[label].ok if (k := key(t)) is not None]

        def dominates(a: list[float], b: list[float]) -> bool:
            return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

        return [t for k, t in keyed if not any(dominates(o, k) for o, other in keyed if other is not t)]


def render_summary(outcome: SweepOutcome) -> list[Table]:
    """End-of-launch tables: counts per budget, best (or Pareto) configs, failures, rejections."""
    counts = Table(title=f"sweep {outcome.name}" + (" (simulated)" if outcome.simulated else "")
                   + f": {format_elapsed(outcome.wall_s)}")
    for col in ("budget", "FLOPs", "ok", "failed", "pruned", "rejected", "resumed", "best val loss"):
        counts.add_column(col, justify="left" if col == "budget" else "right")
    best_table = Table(title="best config per budget")
    for col in ("budget", "val loss", "trial", "arm", "config"):
        best_table.add_column(col)
    failures = Table(title="failed trials")
    for col in ("budget", "trial", "status", "reason"):
        failures.add_column(col)
    for b in outcome.budgets.values():
        best = b.best()
        loss = None if best is None else objective_value(best.result, PRIMARY_OBJECTIVE)
        counts.add_row(Text(b.label), format_flops(b.budget_flops), str(len(b.ok)), str(len(b.failed)),
                       str(len(b.pruned)), str(len(b.rejected)), str(len(b.resumed)), _fmt_num(loss))
        if best is not None:
            best_table.add_row(Text(b.label), _fmt_num(loss), Text(best.identity.trial_id), Text(best.identity.arm),
                               Text(_fmt_params(best.identity.point)))
        for t in b.failed:
            failures.add_row(Text(b.label), Text(t.identity.trial_id), t.result.status.value,
                             Text((t.result.reason or "")[:120]))
    tables = [counts, best_table]
    if len(outcome.objectives) > 1:
        pareto = Table(title="Pareto set per budget (" + ", ".join(f"{n} {m}" for n, m in outcome.objectives) + ")")
        for col in ("budget", *[n for n, _ in outcome.objectives], "config"):
            pareto.add_column(col)
        for label in outcome.budgets:
            for t in outcome.pareto(label):
                pareto.add_row(Text(label), *[_fmt_num(objective_value(t.result, n)) for n, _ in outcome.objectives],
                               Text(_fmt_params(t.identity.point)))
        tables.append(pareto)
    if failures.row_count:
        tables.append(failures)
    rejected = Table(title="rejected candidates (never trained)")
    for col in ("budget", "config", "reason"):
        rejected.add_column(col)
    for b in outcome.budgets.values():
        for h, rejection in list(b.rejected.items())[:20]:
            rejected.add_row(Text(b.label), Text(_fmt_params(rejection.point) or h[:10]),
                             Text(rejection.reason[:120]))
    if rejected.row_count:
        tables.append(rejected)
    return tables


def _fmt_params(params: dict[str, Any] | Any) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(dict(params).items()))


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.3e}"
