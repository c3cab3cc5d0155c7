"""ASHA that compares like with like: one ASHAScheduler per (budget level, seed index).

A trial is only ever stopped in favour of trials of its own budget (a smaller budget's trial is shorter, so
its early losses are not comparable) and its own seed index (seed i of every config shares init and batch
order, so the rungs compare configs, not luck). Trials of other groups never enter a group's rungs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from runners.trainable import trial_identity

GroupKey = tuple[str, int]  # (budget label, seed)


class GroupedASHA(FIFOScheduler):
    """Routes each trial to the ASHAScheduler of its (budget, seed) group, made on first use by `make`."""

    def __init__(self, make: Callable[[], ASHAScheduler]) -> None:
        super().__init__()
        self._make = make
        self._groups: dict[GroupKey, ASHAScheduler] = {}

    def _group(self, trial: Any) -> ASHAScheduler:
        identity = trial_identity(trial.config)
        key = (identity.budget_label, identity.seed)
        if key not in self._groups:
            self._groups[key] = self._make()
        return self._groups[key]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # every group's ASHA was made with its metric and mode

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._group(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        return str(self._group(trial).on_trial_result(tune_controller, trial, result))

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        self._group(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._group(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(f"ASHA for budget {label}, seed {seed}: {asha.debug_string()}"
                         for (label, seed), asha in self._groups.items()) or "ASHA (no trials yet)"

    def save(self, checkpoint_path: str) -> None:  # resume reads result records, not Tune's scheduler state
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None


