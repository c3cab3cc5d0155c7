"""Budget levels: which training-FLOPs level a trial belongs to, by one stated rule.

A sweep trains at a few budget levels; trials that were imported, or whose level label was lost,
carry only FLOPs (the planned `budget_flops`, else the measured `train_flops`), which scatter
around the level they were meant for. The rule, used by IsoFLOP grouping and by `coe-sweep import`:

1. A trial with a budget label keeps it; the label's level is the median FLOPs of its trials.
2. A trial without one goes to the level nearest in log FLOPs when |ln(F / level)| <= tol_log
   (default `DEFAULT_TOL_LOG` = 0.2, i.e. within x1.22 of the level). Levels are the labelled ones,
   or, when no trial has a label, found from the unlabelled trials' FLOPs by greedy densest windows
   (`cluster_levels`: the densest +-tol_log window's median is a level, its trials leave, repeat
   while a window holds >= 3 trials), labelled f"{level:.3g}".
3. A trial farther than tol_log from every level is off the levels: it has no IsoFLOP profile
   (Approach 2 cannot use it) but the parametric laws still fit it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_TOL_LOG = 0.2
MIN_LEVEL_TRIALS = 3  # an IsoFLOP parabola needs >= 3 distinct sizes anyway


@dataclass(frozen=True)
class Level:
    label: str
    flops: float


def check_tol(tol_log: float) -> float:
    if not (isinstance(tol_log, (int, float)) and math.isfinite(tol_log) and 0 < tol_log <= 2.5):
        raise ValueError(f"tol_log={tol_log!r} is invalid: expected a tolerance in ln(FLOPs) in (0, 2.5], "
                         f"e.g. {DEFAULT_TOL_LOG} (within x{math.exp(DEFAULT_TOL_LOG):.2f} of a level)")
    return float(tol_log)


def level_label(flops: float) -> str:
    return f"{flops:.3g}"


def cluster_levels(flops: np.ndarray, tol_log: float = DEFAULT_TOL_LOG,
                   min_trials: int = MIN_LEVEL_TRIALS) -> list[Level]:
    """Levels from unlabelled FLOPs (rule 2): greedy densest windows, so near levels never chain together.

    Repeatedly, the FLOPs value with the most others within tol_log (ties: the smallest) opens a
    window of +-tol_log; the window's median becomes a level and its trials leave the pool. Stops
    when the densest window holds fewer than `min_trials` trials (those are off the levels).
    """
    check_tol(tol_log)
    logs = np.sort(np.log(flops[np.isfinite(flops) & (flops > 0)]))
    found: list[float] = []
    while logs.size:
        counts = np.searchsorted(logs, logs + tol_log, side="right") - np.searchsorted(logs, logs - tol_log)
        centre = int(np.argmax(counts))
        if counts[centre] < min_trials:
            break
        window = np.abs(logs - logs[centre]) <= tol_log
        found.append(float(np.exp(np.median(logs[window]))))
        logs = logs[~window]
    return [Level(level_label(f), f) for f in sorted(found)]


def nearest_level(flops: np.ndarray, levels: Sequence[Level], tol_log: float = DEFAULT_TOL_LOG) -> np.ndarray:
    """Index into `levels` of each FLOPs value's nearest level within tol_log, else -1 (off the levels)."""
    check_tol(tol_log)
    out = np.full(flops.shape, -1, dtype=int)
    if not levels:
        return out
    level_logs = np.log([lv.flops for lv in levels])
    ok = np.isfinite(flops) & (flops > 0)
    dist = np.abs(np.log(np.where(ok, flops, 1.0))[:, None] - level_logs[None, :])
    best = dist.argmin(axis=1)
    close = ok & (dist[np.arange(flops.size), best] <= tol_log)
    out[close] = best[close]
    return out


def assign_levels(labels: Sequence[str | None], flops: np.ndarray,
                  tol_log: float = DEFAULT_TOL_LOG) -> tuple[list[str | None], list[Level]]:
    """Per trial its level label (None: off the levels or no FLOPs), and the levels ascending in FLOPs.

    labels: the trials' budget labels (None / '' / 'None' / 'nan' mean none); flops: their FLOPs
    (budget, else measured), used for a labelled level's value and to place unlabelled trials.
    """
    given = [None if lab is None or str(lab) in ("", "None", "nan") else str(lab) for lab in labels]
    labelled: dict[str, list[float]] = {}
    for lab, f in zip(given, flops, strict=True):
        if lab is not None:
            labelled.setdefault(lab, []).append(float(f))
    levels = []
    for lab, values in labelled.items():
        finite = [v for v in values if math.isfinite(v) and v > 0]
        levels.append(Level(lab, float(np.median(finite)) if finite else float("nan")))
    missing = np.array([lab is None for lab in given], dtype=bool)
    if missing.any():
        placeable = [lv for lv in levels if math.isfinite(lv.flops)]
        if not placeable:
            placeable = cluster_levels(flops[missing], tol_log)
            levels += placeable
        index = nearest_level(flops[missing], placeable, tol_log)
        for row, i in zip(np.flatnonzero(missing), index, strict=True):
            given[row] = placeable[i].label if i >= 0 else None
    levels.sort(key=lambda lv: (math.isnan(lv.flops), lv.flops, lv.label))
    return given, levels
