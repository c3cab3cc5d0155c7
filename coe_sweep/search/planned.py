"""How many trials a sweep runs, per budget level: the one rule `launch`, `plan` and `status` count by.

Configs per level:
- grid: every feasible grid point, in grid order, configs equal up to execution-only fields counted once,
  capped by search.trials_per_budget;
- random / tpe / nsga2: search.trials_per_budget configs (8 when unset).
Trials per level = configs x search.seeds (every config trains with seeds 0 .. seeds-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from coe_sweep.search.candidates import Budget, TrialPlan, budgets, plan_trial
from coe_sweep.search.space import grid_points

if TYPE_CHECKING:
    from coe_sweep.spec.schema import SweepSpec


@dataclass(frozen=True)
class PlannedBudget:
    """What a sweep plans at one budget level."""

    budget: Budget
    configs: int  # configs the searcher proposes (grid: the feasible points, capped)
    seeds: int = 1  # each config trains with seeds 0 .. seeds-1
    grid: tuple[TrialPlan, ...] | None = None  # grid search: those configs' plans, in order
    rejected: tuple[TrialPlan, ...] = ()  # grid search: the infeasible points, with their reasons

    @property
    def trials(self) -> int:
        return self.configs * self.seeds

    @property
    def planned_flops(self) -> float:
        """Training FLOPs of the level's trials: the level times the trials, or (token budgets, grid) the sum
        of the configs' FLOPs; 0 for a token budget a sampler explores (unknown before it runs)."""
        if self.budget.flops is not None:
            return self.trials * self.budget.flops
        return self.seeds * sum(p.train_flops for p in self.grid or ())


def grid_plans(spec: SweepSpec, budget: Budget) -> tuple[list[TrialPlan], list[TrialPlan]]:
    """(the feasible grid plans the sweep runs, in grid order and capped; the infeasible ones)."""
    plans = [plan_trial(spec, budget, point) for point in grid_points(spec)]
    seen: set[str] = set()  # execution-only fields (device, dispatch) do not change the hash: one trial each
    feasible: list[TrialPlan] = []
    for p in plans:
        if p.feasible and p.config_hash not in seen:
            seen.add(p.config_hash)
            feasible.append(p)
    cap = spec.search.trials_per_budget
    return (feasible if cap is None else feasible[:cap]), [p for p in plans if not p.feasible]


def planned_trials(spec: SweepSpec) -> list[PlannedBudget]:
    """The trials of every budget level, in the spec's order (see the module docstring)."""
    out: list[PlannedBudget] = []
    for budget in budgets(spec):
        if spec.search.algorithm == "grid":
            chosen, rejected = grid_plans(spec, budget)
            out.append(PlannedBudget(budget, len(chosen), spec.search.seeds, tuple(chosen), tuple(rejected)))
        else:
            out.append(PlannedBudget(budget, spec.search.default_trials, spec.search.seeds))
    return out
