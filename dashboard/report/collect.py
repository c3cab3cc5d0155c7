"""Every answer a report shows, computed once by the functions the API and the page use (dashboard.answers).

Nothing here fits anything itself: profiles, laws, predictions, Pareto sets and arm comparisons are the
answers' own objects and response models, so a report, the page and `coe-sweep optimal` agree to the digit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.analysis.arms import arm_order
from coe_sweep.analysis.isoflop import IsoFlopProfile
from coe_sweep.analysis.methods import LawSet
from coe_sweep.analysis.scaling import ScalingFit
from dashboard import answers
from dashboard.schemas import CompareOut, FitFlagOut, FrontierOut, OptimalOut, ParetoOut, ScalingOut

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
X = "params_active"
TARGET_FACTOR = 10.0  # the report predicts the optimum at 10x the largest trial's budget
PARETO_OBJECTIVES = [(C.FINAL_VAL_LOSS, "min"), (C.PEAK_MEMORY_BYTES, "min")]


@dataclass
class SweepAnswers:
    sweep: Any  # the tracking store's SweepSummary
    frame: pd.DataFrame
    profiles: list[IsoFlopProfile]
    fit: ScalingFit | str
    law_set: LawSet | str
    frontier: FrontierOut
    scaling: ScalingOut
    optimal: OptimalOut | None  # None without a finished trial
    pareto: ParetoOut
    compare: CompareOut | None  # None with fewer than 2 arms
    target_flops: float | None
    flags: list[FitFlagOut] = field(default_factory=list)  # every flag, each once

    @property
    def n_arms(self) -> int:
        rows = answers.finished(self.frame)
        return 0 if rows.empty else len(arm_order(rows))


def _target(frame: pd.DataFrame) -> float | None:
    flops = C.trial_flops(answers.finished(frame))
    flops = flops[np.isfinite(flops) & (flops > 0)]
    return float(TARGET_FACTOR * flops.max()) if flops.size else None


def collect(store: Any, sweep_name: str, progress: Progress) -> SweepAnswers:
    """All answers for one sweep of `store` (a TrackingStore); `progress` gets a line before each slow step."""
    sweep = store.sweep(sweep_name)
    progress(f"reading the trials of {sweep.name} ({sweep.id})")
    frame = store.trials_frame(sweep.id)
    sid = sweep.id
    progress("fitting IsoFLOP profiles (bootstrap per level)")
    profiles = answers.profiles(frame, X, None)
    frontier = answers.frontier(frame, profiles, sweep_id=sid, version=1, x=X, family=None)
    progress("fitting the scaling laws (Approach 2, Approach 3, the CoE/MoE law) and their audits")
    fit = answers.fit(profiles)
    scaling = answers.scaling(frame, profiles, fit, sweep_id=sid, version=1, x=X, family=None)
    law_set = answers.laws(frame, None, profiles, fit)
    answers.add_methods(scaling, law_set)
    target = _target(frame)
    optimal = None if target is None else answers.optimal(frame, fit, sweep_id=sid, version=1, x=X, family=None,
                                                           flops=target, max_memory_bytes=None, law_set=law_set,
                                                           profiles=profiles)
    progress("Pareto fronts per budget level")
    pareto = answers.pareto(frame, frame, PARETO_OBJECTIVES, sweep_id=sid, version=1, filters={},
                            include_dominated=True)
    compare = None
    rows = answers.finished(frame)
    if not rows.empty and len(arm_order(rows)) >= 2:
        progress("comparing arms (paired over seeds, bootstrap multipliers)")
        baseline = answers.stored_spec_baseline(store, sid)
        compare = answers.compare(frame, sweep_id=sid, version=1, baseline=None, spec_default=baseline)
    flags = [f for b in frontier.budgets for f in b.flags] + list(scaling.flags) + (list(optimal.flags) if optimal else [])
    unique = list({(f.code, f.fit, f.level, f.text): f for f in flags}.values())
    return SweepAnswers(sweep, frame, profiles, fit, law_set, frontier, scaling, optimal, pareto, compare, target,
                        unique)


def law_curves(result: SweepAnswers, n_points: int = 40) -> dict[str, list[tuple[float, Any]]]:
    """method -> [(flops, Optimum)] over the levels' range and out to the report's target, for the figures."""
    if not isinstance(result.law_set, LawSet):
        return {}
    levels = [p.budget_flops for p in result.profiles if np.isfinite(p.budget_flops)]
    if not levels:
        return {}
    hi = max(result.target_flops or 0.0, max(levels))
    grid = np.geomspace(min(levels) / 2, hi, n_points)
    curves: dict[str, list[tuple[float, Any]]] = {}
    for method in result.law_set.fitted():
        points = [(float(c), result.law_set.point(method, float(c))[0]) for c in grid]
        curves[method] = [(c, o) for c, o in points if o is not None]
    return curves


def blocking(flags: list[FitFlagOut], fit: str) -> bool:
    return any(f.blocking and f.fit == fit for f in flags)

