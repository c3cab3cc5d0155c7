"""Arm comparisons: every arm against a baseline arm, with intervals over seeds, under three meanings of
"equal" (training FLOPs, measured peak memory, measured wall time) and as compute multipliers.

Which config stands for an arm: at a budget (or under a memory or time cap) an arm may have several
configs (an IsoFLOP sweep varies the width); the arm is represented by its best one, the lowest mean final
val loss over its seeds, because "the best this architecture does at this compute" is the question a
researcher asks (pooling all configs would let a badly sized config drag its arm down). The choice is
stated in `Comparison.selection`. The compute multiplier redoes the choice in every bootstrap draw, so
its interval includes the selection; the per-budget t interval is conditional on the chosen pair, which
is exact for the one-config-per-arm design of a paired comparison (search_spaces/coe_vs_moe.yaml) and is
measured on multi-config sweeps in benchmarks/compare_calibration.py.

- equal FLOPs: per budget level, each arm's best config vs the baseline's, paired over shared seeds
  (`paired.paired_difference`: mean, t interval, p-value, verdict, minimum detectable difference).
- equal memory / equal wall time: each arm's Pareto front of (resource, mean loss) over all its configs
  and levels; at every cap (a resource value on some arm's front) each arm's best config within the cap
  is compared with the baseline's the same way.
- compute multiplier: `multiplier.compute_multipliers` over each arm's levels (needs >= 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.analysis.arms import Cell, arm_order, best_cells, cells, default_baseline
from coe_sweep.analysis.multiplier import N_BOOT, Frontier, Multiplier, compute_multipliers
from coe_sweep.analysis.paired import LEVEL, MeanCI, PairedDifference, mean_ci, paired_difference

SELECTION = ("each arm is represented by its best config (lowest mean final val loss over its seeds) at each "
             "budget or cap; differences pair seed i of the arm with seed i of the baseline")
FLOPS_TOLERANCE = 0.05  # relative train-FLOPs difference beyond which a level is not iso-compute
CAP_TOLERANCE = 0.01  # memory or time caps closer than this (relative) are one cap


@dataclass(frozen=True)
class ArmResult:
    """One arm at one budget (or under one cap): its best config, mean +- CI, and the difference."""

    arm: str
    cell: Cell
    n_configs: int
    summary: MeanCI
    diff: PairedDifference | None  # None for the baseline itself (or when no seed is shared)
    peak_memory_ratio: float | None  # arm / baseline
    wall_s_ratio: float | None
    train_flops_ratio: float | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BudgetComparison:
    budget_label: str
    budget_flops: float
    arms: list[ArmResult]  # the baseline first when it has trials here
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CapComparison:
    """Under `cap` of `resource` (peak_memory_bytes or wall_s): each arm's best config within it."""

    resource: str
    cap: float
    arms: list[ArmResult]
    missing: list[str]  # arms with no config within the cap


@dataclass(frozen=True)
class Comparison:
    baseline: str | None
    arms: list[str]
    level: float
    budgets: list[BudgetComparison]
    equal_memory: list[CapComparison]
    equal_wall: list[CapComparison]
    frontiers: list[Frontier]
    multipliers: list[Multiplier]
    selection: str = SELECTION
    notes: list[str] = field(default_factory=list)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _arm_result(cell: Cell, n_configs: int, base: Cell | None, level: float) -> ArmResult:
    notes: list[str] = []
    diff = None
    if base is not None and cell is not base:
        if set(cell.seeds) & set(base.seeds):
            diff = paired_difference(cell.seeds, cell.losses, base.seeds, base.losses, level)
            unpaired = sorted(set(cell.seeds) ^ set(base.seeds))
            if unpaired:
                notes.append(f"seed(s) {unpaired} ran on one side only: left out of the difference")
        else:
            notes.append(f"no seed in common with the baseline ({cell.seeds} vs {base.seeds}): no paired difference")
    if n_configs > 1:
        notes.append(f"best of {n_configs} configs by mean over seeds")
    ref = base if base is not None else cell
    flops_ratio = _ratio(cell.train_flops, ref.train_flops)
    if flops_ratio is not None and abs(flops_ratio - 1) > FLOPS_TOLERANCE:
        notes.append(f"train FLOPs differ from the baseline's by {flops_ratio - 1:+.1%}: not iso-compute")
    return ArmResult(arm=cell.arm, cell=cell, n_configs=n_configs, summary=mean_ci(cell.losses, level), diff=diff,
                     peak_memory_ratio=_ratio(cell.peak_memory_bytes, ref.peak_memory_bytes),
                     wall_s_ratio=_ratio(cell.wall_s, ref.wall_s), train_flops_ratio=flops_ratio, notes=notes)


def _compare_group(group: list[Cell], baseline: str, order: list[str], level: float) -> list[ArmResult]:
    best = best_cells(group)
    base = best.get(baseline, (None, 0))[0]
    return [_arm_result(best[arm][0], best[arm][1], base, level) for arm in order if arm in best]


def _budget_comparisons(all_cells: list[Cell], baseline: str, order: list[str], level: float) -> list[BudgetComparison]:
    out = []
    labels = list(dict.fromkeys(c.budget_label for c in all_cells))  # ascending FLOPs (cells() order)
    for label in labels:
        group = [c for c in all_cells if c.budget_label == label]
        notes = [] if any(c.arm == baseline for c in group) else [
            f"the baseline {baseline} has no finished trial at this budget: no differences"]
        out.append(BudgetComparison(label, group[0].budget_flops, _compare_group(group, baseline, order, level), notes))
    return out


def _front(arm_cells: list[Cell], resource: str) -> list[Cell]:
    """Cells on the (resource, mean loss) Pareto front, by resource ascending."""
    measured = [c for c in arm_cells if getattr(c, resource) is not None]
    front: list[Cell] = []
    for cell in sorted(measured, key=lambda c: (getattr(c, resource), c.mean)):
        if not front or cell.mean < front[-1].mean:
            front.append(cell)
    return front


def _cap_comparisons(all_cells: list[Cell], baseline: str, order: list[str], resource: str,
                     level: float) -> list[CapComparison]:
    fronts = {arm: _front([c for c in all_cells if c.arm == arm], resource) for arm in order}
    values = sorted({getattr(c, resource) for front in fronts.values() for c in front})
    # resources within CAP_TOLERANCE of the next one count as equal: the larger cap stands for both
    caps = [v for v, nxt in zip(values, [*values[1:], np.inf], strict=False) if nxt > v * (1 + CAP_TOLERANCE)]
    out: list[CapComparison] = []
    previous: tuple[str, ...] | None = None
    for cap in caps:
        within = {arm: [c for c in front if getattr(c, resource) <= cap] for arm, front in fronts.items()}
        chosen = {arm: cs[-1] for arm, cs in within.items() if cs}
        key = tuple(f"{c.arm}/{c.budget_label}/{c.config}" for c in chosen.values())
        if baseline not in chosen or len(chosen) < 2 or key == previous:
            continue
        previous = key
        base = chosen[baseline]
        arms = [_arm_result(chosen[arm], 1, base, level) for arm in order if arm in chosen]
        out.append(CapComparison(resource, float(cap), arms, [a for a in order if a not in chosen]))
    return out


def compare_arms(df: pd.DataFrame, baseline: str | None = None, *, level: float = LEVEL, n_boot: int = N_BOOT,
                 seed: int = 0) -> Comparison:
    """Every arm against `baseline` (default: `moe`, else the first arm); ValueError for an unknown baseline."""
    if not 0.5 <= level < 1:
        raise ValueError(f"level={level!r} is invalid: expected a confidence level in [0.5, 1), e.g. 0.95")
    all_cells = cells(df)
    order = [a for a in arm_order(C.ok_rows(df)) if any(c.arm == a for c in all_cells)]
    if baseline is not None and baseline not in order:
        known = arm_order(df)
        raise ValueError(f"baseline={baseline!r} is not an arm with finished trials in this sweep: expected one of "
                         f"{', '.join(order) or '(none yet)'}" + (f" (arms: {', '.join(known)})" if known != order else ""))
    baseline = baseline or default_baseline(order)
    if baseline is None:
        return Comparison(None, [], level, [], [], [], [], [], notes=["no finished trials yet: nothing to compare"])
    order = [baseline, *[a for a in order if a != baseline]]
    notes = [] if len(order) > 1 else [f"only one arm ({baseline}) has finished trials: nothing to compare it with"]
    frontiers, multipliers, fit_notes = compute_multipliers(
        {arm: [c for c in all_cells if c.arm == arm] for arm in order}, baseline, n_boot=n_boot, level=level, seed=seed)
    simulated = C.SIMULATED in df.columns and bool(df[C.SIMULATED].astype(bool).all())
    if simulated:
        notes.append("simulated trials: peak memory is the analytic estimate and wall time was not measured "
                     "(no equal-wall comparison)")
    return Comparison(
        baseline=baseline, arms=order, level=level, budgets=_budget_comparisons(all_cells, baseline, order, level),
        equal_memory=_cap_comparisons(all_cells, baseline, order, C.PEAK_MEMORY_BYTES, level),
        equal_wall=[] if simulated else _cap_comparisons(all_cells, baseline, order, C.WALL_S, level),
        frontiers=frontiers, multipliers=multipliers, notes=notes + fit_notes)
