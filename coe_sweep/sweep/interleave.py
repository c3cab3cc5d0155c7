"""Every budget level in one Tune experiment: `InterleavedSearch` dispatches Tune's `suggest` to one searcher per
budget, so that no slot waits for one budget's last trial while another budget still has trials to run.

Each budget keeps its own searcher (its own Optuna study or grid, fed only its own results) and its own count
of trials still to run. A free slot goes to the budget with the longest expected trial (longest processing time
first: the long trials start early and the short ones fill the slots at the end, where sequential budgets left
them idle), ties to the budget with more trials left. A budget whose searcher has nothing more to propose (or
whose count is used up) is skipped; the sweep's search ends when every budget has ended. Tune's trial id
remembers its budget, so results, completions and ASHA's intermediate reports reach only that budget's searcher
(ASHA itself groups by budget: coe_sweep.sweep.scheduler).
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.search import Searcher

log = logging.getLogger(__name__)

FINISHED: Any = Searcher.FINISHED  # Tune's "no more trials" sentinel


class InterleavedSearch(Searcher):
    """One searcher per budget label behind one `Searcher` (see the module docstring)."""

    def __init__(self, searchers: dict[str, Searcher], trials_left: dict[str, int], trial_cost: dict[str, float],
                 metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self._searchers = dict(searchers)
        self._left = {label: max(0, int(trials_left.get(label, 0))) for label in searchers}
        self._cost = {label: float(trial_cost.get(label, 1.0)) for label in searchers}
        self._ended: set[str] = {label for label, n in self._left.items() if n <= 0}
        self._owner: dict[str, str] = {}  # Tune trial id -> budget label

    @property
    def trials_left(self) -> dict[str, int]:
        return dict(self._left)

    def _order(self) -> list[str]:
        """The budgets still open, the one to ask first first."""
        open_labels = [label for label in self._searchers if label not in self._ended]
        return sorted(open_labels, key=lambda label: (-self._cost[label], -self._left[label]))

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        return True  # every budget's searcher was built with its objectives and space

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for label in self._order():
            config = self._searchers[label].suggest(trial_id)
            if config is None:  # this budget's searcher waits (never today): let another budget use the slot
                continue
            if config == FINISHED:
                log.info("budget %s: its searcher has no more trials", label)
                self._ended.add(label)
                continue
            self._owner[trial_id] = label
            self._left[label] -= 1
            if self._left[label] <= 0:
                self._ended.add(label)
            return dict(config)
        return FINISHED if len(self._ended) == len(self._searchers) else None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        label = self._owner.get(trial_id)
        if label is not None:
            self._searchers[label].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        label = self._owner.pop(trial_id, None)
        if label is not None:
            self._searchers[label].on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:  # resume reads result records, not Tune's searcher state
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None
