"""Routing statistics of trials, read back from the trials frame: per trial and per arm across a sweep.

Every trained trial logs `routing.*` final metrics (runners/routing.py, through
coe_sweep.tracking.writer): per layer l and iteration t `routing.L{l}.C{t}.<stat>` with stat one of
`entropy` (mean router entropy, nats), `overlap_next` (overlap of the experts chosen at t and t+1; absent
for the last iteration), `max_load` / `min_load` (busiest / idlest expert over the mean; 1.0 = balanced)
and `E{e}.load` (expert e's tokens over the mean). Simulated trials log none.

`trial_routing(row)` turns one row into layer x iteration grids; `routing_by_arm(frame)` gives, per arm,
the mean, standard deviation and count over its trials of every grid cell, and the load profile (expert
loads sorted busiest first: expert indices are not comparable between trials, ranks are).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C

PREFIX = "routing."
STATS = ("entropy", "overlap_next", "max_load", "min_load")
SUMMARIES = ("mean_entropy", "mean_overlap_next", "max_load", "dead_experts")
_CELL = re.compile(r"^routing\.L(\d+)\.C(\d+)\.(" + "|".join(STATS) + r")$")
_EXPERT = re.compile(r"^routing\.L(\d+)\.C(\d+)\.E(\d+)\.load$")

Grid = list[list[float | None]]  # [layer][iteration]


@dataclass(frozen=True)
class TrialRouting:
    """One trial's routing: `grids[stat][layer][iteration]`, `loads[layer][iteration][expert]` (over the mean)."""

    n_layers: int
    n_iterations: int
    grids: dict[str, Grid]
    loads: list[list[list[float]]]
    summary: dict[str, float]

    @property
    def empty(self) -> bool:
        return self.n_layers == 0


@dataclass(frozen=True)
class StatSpread:
    mean: Grid
    sd: Grid
    n: list[list[int]]


@dataclass(frozen=True)
class ArmRouting:
    """One arm over its trials: every stat's grid (mean, sd, n), the mean load profile per cell, the summaries."""

    arm: str
    n_trials: int
    n_layers: int
    n_iterations: int
    stats: dict[str, StatSpread]
    load_profile: list[list[list[float]]]  # [layer][iteration][rank]: mean load of the rank-th busiest expert
    summary: dict[str, tuple[float, float | None, int]] = field(default_factory=dict)  # name -> (mean, sd, n)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def routing_columns(columns: Any) -> list[str]:
    return [str(c) for c in columns if str(c).startswith(PREFIX)]


def trial_routing(row: Mapping[str, Any]) -> TrialRouting:
    """The routing grids of one trial (a frame row or its finals mapping); empty when it logged none."""
    cells: dict[tuple[str, int, int], float] = {}
    experts: dict[tuple[int, int, int], float] = {}
    summary: dict[str, float] = {}
    for key, value in row.items():
        number = _finite(value)
        if number is None or not str(key).startswith(PREFIX):
            continue
        if match := _CELL.match(str(key)):
            cells[(match.group(3), int(match.group(1)), int(match.group(2)))] = number
        elif match := _EXPERT.match(str(key)):
            experts[(int(match.group(1)), int(match.group(2)), int(match.group(3)))] = number
        elif str(key).removeprefix(PREFIX) in SUMMARIES:
            summary[str(key).removeprefix(PREFIX)] = number
    layers = 1 + max([layer for _, layer, _ in cells] + [layer for layer, _, _ in experts], default=-1)
    iterations = 1 + max([t for _, _, t in cells] + [t for _, t, _ in experts], default=-1)
    grids = {stat: [[cells.get((stat, layer, t)) for t in range(iterations)] for layer in range(layers)] for stat in STATS}
    n_experts = 1 + max((e for _, _, e in experts), default=-1)
    loads = [[[experts.get((layer, t, e), 0.0) for e in range(n_experts)] if any((layer, t, e) in experts for e in range(n_experts))
              else [] for t in range(iterations)] for layer in range(layers)]
    return TrialRouting(layers, iterations, grids, loads, summary)


def _as_grid(values: np.ndarray) -> Grid:
    return [[_finite(v) for v in row] for row in values]


def _spread(values: list[list[list[float | None]]]) -> tuple[Grid, Grid, list[list[int]]]:
    """Per cell of stacked [trial][layer][iteration] values (NaN = missing): mean, sd (ddof=1), n."""
    stack = np.asarray(values, dtype=float)
    n = np.sum(np.isfinite(stack), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(stack, axis=0) / np.maximum(n, 1), np.nan)
        dev = np.where(np.isfinite(stack), (stack - mean) ** 2, 0.0).sum(axis=0)
        sd = np.where(n > 1, np.sqrt(dev / np.maximum(n - 1, 1)), np.nan)
    return _as_grid(mean), _as_grid(sd), n.astype(int).tolist()


def _arm(arm: str, trials: list[TrialRouting]) -> ArmRouting:
    layers = max(t.n_layers for t in trials)
    iterations = max(t.n_iterations for t in trials)
    stats: dict[str, StatSpread] = {}
    for stat in STATS:
        stacked = [[[np.nan if (layer >= t.n_layers or it >= t.n_iterations or t.grids[stat][layer][it] is None)
                     else t.grids[stat][layer][it] for it in range(iterations)] for layer in range(layers)] for t in trials]
        mean, sd, n = _spread(stacked)
        if any(any(row) for row in n):
            stats[stat] = StatSpread(mean, sd, n)
    profile: list[list[list[float]]] = []
    for layer in range(layers):
        row = []
        for it in range(iterations):
            sorted_loads = [sorted(t.loads[layer][it], reverse=True) for t in trials
                            if layer < t.n_layers and it < t.n_iterations and t.loads[layer][it]]
            width = min((len(s) for s in sorted_loads), default=0)
            row.append([float(np.mean([s[r] for s in sorted_loads])) for r in range(width)])
        profile.append(row)
    summary = {}
    for name in SUMMARIES:
        values = [t.summary[name] for t in trials if name in t.summary]
        if values:
            summary[name] = (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None,
                             len(values))
    return ArmRouting(arm, len(trials), layers, iterations, stats, profile, summary)


def routing_by_arm(frame: pd.DataFrame) -> list[ArmRouting]:
    """Per arm (in order of first appearance), over its finished trials that logged routing statistics."""
    ok = C.ok_rows(frame)
    columns = routing_columns(ok.columns)
    if ok.empty or not columns or C.ARM not in ok.columns:
        return []
    out = []
    for arm, group in ok.groupby(ok[C.ARM].astype(str), sort=False):
        trials = [t for t in (trial_routing(r) for r in group[columns].to_dict(orient="records")) if not t.empty]
        if trials:
            out.append(_arm(str(arm), trials))
    return out
