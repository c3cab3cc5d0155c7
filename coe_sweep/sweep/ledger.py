"""The driver's books for one launch: which trials are finished, running, rejected; and when to stop.

`Ledger` is owned by the driver and handed explicitly to the searchers (which propose only new, feasible
trials and record rejections) and to the Tune callback (which moves trials from running to finished).
`StopPolicy` says when the sweep stops early: too many failed trials (search.max_failures) or a sweep
directory that stopped taking writes. Both live in the driver process only: nothing here is pickled to
a worker, and nothing imports ray.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from coe_sweep.search.candidates import TrialPlan
from coe_sweep.trial import FinishedTrial, TrialIdentity

log = logging.getLogger(__name__)

TrialKey = tuple[str, int]  # (config hash, seed): TrialIdentity.key


@dataclass(frozen=True)
class Rejection:
    """A candidate the planner refused: never trained, no MLflow run."""

    reason: str
    point: dict[str, Any]


@dataclass
class Ledger:
    """Finished trials (earlier launches and this one), running trials with their plans, rejected candidates."""

    finished: dict[TrialKey, FinishedTrial] = field(default_factory=dict)
    resumed: set[TrialKey] = field(default_factory=set)  # finished before this launch
    running: dict[TrialKey, tuple[TrialIdentity, TrialPlan]] = field(default_factory=dict)
    rejected: dict[str, dict[str, Rejection]] = field(default_factory=dict)  # budget -> config hash -> why
    exhausted: set[str] = field(default_factory=set)  # budgets whose searcher found nothing new to run
    interrupted: dict[str, list[TrialKey]] = field(default_factory=dict)  # budget -> cut short by a stop

    @classmethod
    def resumed_from(cls, finished: dict[TrialKey, FinishedTrial]) -> Ledger:
        return cls(finished=dict(finished), resumed=set(finished))

    def is_known(self, key: TrialKey) -> bool:
        """Finished or running: a searcher must not propose it again."""
        return key in self.finished or key in self.running

    def start(self, identity: TrialIdentity, plan: TrialPlan) -> None:
        self.running[identity.key] = (identity, plan)

    def plan_of(self, key: TrialKey) -> TrialPlan | None:
        entry = self.running.get(key)
        return None if entry is None else entry[1]

    def finish(self, trial: FinishedTrial) -> None:
        self.finished[trial.identity.key] = trial
        self.running.pop(trial.identity.key, None)

    def interrupt(self, key: TrialKey, budget_label: str) -> None:
        self.running.pop(key, None)
        self.interrupted.setdefault(budget_label, []).append(key)

    def reject(self, budget_label: str, plan: TrialPlan) -> bool:
        """Record an infeasible candidate; False when it was already recorded."""
        rejected = self.rejected.setdefault(budget_label, {})
        if plan.config_hash in rejected:
            return False
        rejected[plan.config_hash] = Rejection(str(plan.reason), dict(plan.sampled))
        return True

    def finished_in(self, budget_label: str) -> list[FinishedTrial]:
        return [t for t in self.finished.values() if t.identity.budget_label == budget_label]


@dataclass
class StopPolicy:
    """When the sweep stops early, and why (None while it runs on)."""

    max_failures: int | None = None
    n_failed: int = 0
    stopped_reason: str | None = None
    storage_error: str | None = None
    interrupted_by: int | None = None  # the signal (SIGINT, SIGTERM) that asked the driver to stop

    def failed(self) -> None:
        self.n_failed += 1

    def interrupt(self, signum: int) -> None:
        """Ctrl-C or SIGTERM: the sweep stops (Tune's stopper reads this even when the KeyboardInterrupt the
        signal handler raises lands where Python ignores exceptions, e.g. in a weakref callback)."""
        if self.interrupted_by is None:
            self.interrupted_by = signum
            self.stopped_reason = f"interrupted by signal {signum}"

    def stop_requested(self) -> bool:
        if self.stopped_reason is None and self.max_failures is not None and self.n_failed >= self.max_failures:
            self.stopped_reason = (f"stopped after {self.n_failed} failed trial(s) "
                                   f"(max_failures={self.max_failures})")
            log.warning("sweep %s", self.stopped_reason)
        return self.stopped_reason is not None

    def storage_failed(self, root: str, what: str, exc: OSError) -> None:
        """The sweep directory stopped taking writes: stop the sweep cleanly, keep everything finished.

        A trial whose result record could not be written is still logged to MLflow, which a relaunch reads;
        trials cut short by the stop are marked interrupted and run again by the relaunch.
        """
        if self.storage_error is not None:
            return
        self.storage_error = f"{exc.strerror or exc} ({what})"
        self.stopped_reason = (
            f"stopped: cannot write to the sweep directory {root}: {self.storage_error}. "
            f"Free space there (or set cluster.storage_path), then run `coe-sweep launch` with the same spec "
            f"again: finished trials are kept and none is retrained")
        log.error("sweep %s", self.stopped_reason)
