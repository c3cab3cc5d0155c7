"""Pareto sets: non-dominated trials over 2-3 objectives with min/max directions.

Dominance (after turning every objective into a minimisation): a dominates b when a <= b in every
objective and a < b in at least one. Exact duplicates do not dominate each other, so they share
a front. Rows with NaN in any objective are left out (rank -1) and counted.

- First front, 2 objectives: sort-and-sweep, O(n log n), fully vectorised (lexicographic sort,
  prefix minimum of the second objective; see `_first_front_2d`).
- First front, >= 3 objectives: an anchor prefilter (the 2-D fronts of every objective pair and
  the best rank-sum points) discards most dominated points in one vectorised pass; the survivors
  are sorted lexicographically (a point can only be dominated by one before it) and scanned in
  blocks of 256, each checked at once against the front found so far and against its own block.
  Worst case (every point non-dominated) is O(n^2) comparisons, like any pairwise method.
- Full ranking (`non_dominated_sort`): repeated peeling of first fronts, only when asked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C

log = logging.getLogger(__name__)

DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = (("val_loss", "min"), ("peak_memory", "min"))
_BLOCK = 256


def _as_minimisation(values_NM: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    values_NM = np.asarray(values_NM, dtype=float)
    if values_NM.ndim != 2:
        raise ValueError(f"values_NM has shape {values_NM.shape}: expected (n_points, n_objectives)")
    if len(directions) != values_NM.shape[1]:
        raise ValueError(f"directions={list(directions)} has {len(directions)} entries: expected one per "
                         f"objective ({values_NM.shape[1]})")
    sign_M = np.array([{"min": 1.0, "max": -1.0}.get(d, np.nan) for d in directions])
    if np.isnan(sign_M).any():
        bad = [d for d in directions if d not in ("min", "max")]
        raise ValueError(f"directions={bad} is invalid: expected 'min' or 'max' per objective")
    signed_NM: np.ndarray = values_NM * sign_M
    return signed_NM


def _first_front_2d(v_N2: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated points (minimisation) in O(n log n)."""
    n = v_N2.shape[0]
    order = np.lexsort((v_N2[:, 1], v_N2[:, 0]))  # by f1, then f2
    f1, f2 = v_N2[order, 0], v_N2[order, 1]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = f1[1:] != f1[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    prefix_min = np.minimum.accumulate(f2)
    # best f2 among points with strictly smaller f1 (those dominate when their f2 <= ours)
    before = np.where(group_start > 0, prefix_min[np.maximum(group_start - 1, 0)], np.inf)
    # within an f1 tie, the group's first point has its minimum f2: it dominates any larger f2
    dominated = (before <= f2) | (f2[group_start] < f2)
    mask = np.empty(n, dtype=bool)
    mask[order] = ~dominated
    return mask


def _dominance(ref_RM: np.ndarray, cand_KM: np.ndarray) -> np.ndarray:
    """[k, r]: does reference point r dominate candidate k? Built column by column: reducing over a
    length-3 last axis is ~20x slower in numpy than combining M (K, R) planes with & and |."""
    le_KR = ref_RM[None, :, 0] <= cand_KM[:, None, 0]
    lt_KR = ref_RM[None, :, 0] < cand_KM[:, None, 0]
    for m in range(1, ref_RM.shape[1]):
        le_KR &= ref_RM[None, :, m] <= cand_KM[:, None, m]
        lt_KR |= ref_RM[None, :, m] < cand_KM[:, None, m]
    return le_KR & lt_KR


def _dominated_by_any(cand_KM: np.ndarray, ref_RM: np.ndarray, block: int = 1024) -> np.ndarray:
    """For each candidate: does any reference point dominate it? (candidate blocks bound memory)"""
    out = np.zeros(cand_KM.shape[0], dtype=bool)
    if ref_RM.shape[0] == 0:
        return out
    for start in range(0, cand_KM.shape[0], block):
        out[start:start + block] = _dominance(ref_RM, cand_KM[start:start + block]).any(axis=1)
    return out


def _anchors(v_NM: np.ndarray, n_best: int = 32) -> np.ndarray:
    """Strong points that discard most dominated points in one pass: the 2-D fronts of every pair
    of objectives, plus the points with the best sum of per-objective ranks."""
    m = v_NM.shape[1]
    picks = [np.flatnonzero(_first_front_2d(v_NM[:, [i, j]])) for i in range(m) for j in range(i + 1, m)]
    rank_sum = np.argsort(np.argsort(v_NM, axis=0), axis=0).sum(axis=1)
    picks.append(np.argsort(rank_sum)[:n_best])
    return np.unique(np.concatenate(picks))


def _first_front_nd(v_NM: np.ndarray) -> np.ndarray:
    """Anchor prefilter, then the blocked scan over the survivors. Sound: a point dominated by any
    point is off the front, and a survivor dominated only by a discarded point is dominated by
    that point's (surviving, by transitivity) front dominator too."""
    anchors = v_NM[_anchors(v_NM)]
    survivors = np.flatnonzero(~_dominated_by_any(v_NM, anchors))
    mask = np.zeros(v_NM.shape[0], dtype=bool)
    mask[survivors] = _blocked_scan(v_NM[survivors])
    return mask


def _blocked_scan(v_NM: np.ndarray) -> np.ndarray:
    n = v_NM.shape[0]
    order = np.lexsort(v_NM.T[::-1])  # by f1, then f2, ...: dominators come first
    v = v_NM[order]
    keep = np.zeros(n, dtype=bool)
    front_idx: list[np.ndarray] = []
    for start in range(0, n, _BLOCK):
        block = v[start:start + _BLOCK]
        front = v[np.concatenate(front_idx)] if front_idx else v[:0]
        # earlier blocks through their front; within the block any point (later ones never dominate)
        dominated = _dominated_by_any(block, front) | _dominance(block, block).any(axis=1)
        keep[start:start + _BLOCK] = ~dominated
        front_idx.append(start + np.flatnonzero(~dominated))
    mask = np.empty(n, dtype=bool)
    mask[order] = keep
    return mask


def first_front_mask(values_NM: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the first (non-dominated) front; rows with NaN are False."""
    v = _as_minimisation(values_NM, directions)
    finite = ~np.isnan(v).any(axis=1)
    mask = np.zeros(v.shape[0], dtype=bool)
    if finite.any():
        sub = v[finite]
        mask[finite] = _first_front_2d(sub) if sub.shape[1] == 2 else _first_front_nd(sub)
    return mask


def non_dominated_sort(values_NM: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Front rank per row (0 = non-dominated, 1 = non-dominated once front 0 is removed, ...); NaN rows -1."""
    v = _as_minimisation(values_NM, directions)
    rank = np.full(v.shape[0], -1, dtype=int)
    remaining = np.flatnonzero(~np.isnan(v).any(axis=1))
    front = 0
    while remaining.size:
        sub = v[remaining]
        mask = _first_front_2d(sub) if sub.shape[1] == 2 else _first_front_nd(sub)
        rank[remaining[mask]] = front
        remaining = remaining[~mask]
        front += 1
    return rank


@dataclass
class ParetoSet:
    indices: pd.Index  # frame index labels of the first front, sorted by the first objective
    objectives: list[tuple[str, str]]  # resolved (column, direction)
    n_considered: int  # rows after status and filters, before NaN exclusion
    n_excluded_nan: int
    n_excluded_status: int
    n_excluded_filters: int
    ranks: np.ndarray | None = field(default=None, repr=False)  # per considered row, when asked

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable({"indices": list(self.indices), "objectives": self.objectives,
                           "n_considered": self.n_considered, "n_excluded_nan": self.n_excluded_nan,
                           "n_excluded_status": self.n_excluded_status,
                           "n_excluded_filters": self.n_excluded_filters})  # type: ignore[return-value]


def resolve_objectives(objectives: Sequence[tuple[str, str] | str]) -> list[tuple[str, str]]:
    """Names (short or column) and directions -> [(column, direction)]; a bare name takes its default."""
    if not 1 <= len(objectives) <= 8:
        raise ValueError(f"objectives={list(objectives)} is invalid: expected 1 to 8 (name, 'min'|'max') pairs")
    resolved: list[tuple[str, str]] = []
    for item in objectives:
        name, direction = (item, None) if isinstance(item, str) else item
        column, default = C.resolve_objective(name)
        resolved.append((column, C.resolve_direction(name, direction) if direction is not None else default))
    columns = [c for c, _ in resolved]
    if len(set(columns)) != len(columns):
        raise ValueError(f"objectives={list(objectives)} names a column twice: expected distinct objectives")
    return resolved


def _apply_filters(df: pd.DataFrame, filters: Mapping[str, Any]) -> pd.DataFrame:
    """column -> scalar (==), list/tuple/set (isin) or callable(Series) -> bool mask."""
    for column, want in filters.items():
        if column not in df.columns:
            raise ValueError(f"filter column {column!r} is unknown: expected one of {sorted(map(str, df.columns))}")
        series = df[column]
        if callable(want):
            keep = np.asarray(want(series), dtype=bool)
        else:
            values = list(want) if isinstance(want, (list, tuple, set, frozenset)) else [want]
            text = series.astype(str)
            keep = text.isin([str(v) for v in values]).to_numpy()
            num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
            wanted = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
            if wanted.size:
                keep = keep | np.isin(num, wanted)
        df = df[keep]
    return df


def pareto_set(df: pd.DataFrame, objectives: Sequence[tuple[str, str] | str] = DEFAULT_OBJECTIVES, *,
               filters: Mapping[str, Any] | None = None, only_ok: bool = True,
               with_ranks: bool = False) -> ParetoSet:
    """First Pareto front of the trials frame (ok rows, after `filters`), with exclusion counts."""
    resolved = resolve_objectives(objectives)
    rows = C.ok_rows(df) if only_ok else df
    n_status = len(df) - len(rows)
    n_before = len(rows)
    if filters:
        rows = _apply_filters(rows, filters)
    values_NM = np.stack([C.numeric(rows, col) for col, _ in resolved], axis=1) if len(rows) else \
        np.empty((0, len(resolved)))
    directions = [d for _, d in resolved]
    nan_rows = np.isnan(values_NM).any(axis=1)
    if nan_rows.any():
        log.info("pareto: %d row(s) excluded for NaN in %s", int(nan_rows.sum()), [c for c, _ in resolved])
    mask = first_front_mask(values_NM, directions)
    front = np.flatnonzero(mask)
    front = front[np.argsort(values_NM[front, 0] * (1 if directions[0] == "min" else -1), kind="stable")]
    return ParetoSet(indices=rows.index[front], objectives=resolved, n_considered=len(rows),
                     n_excluded_nan=int(nan_rows.sum()), n_excluded_status=n_status,
                     n_excluded_filters=n_before - len(rows),
                     ranks=non_dominated_sort(values_NM, directions) if with_ranks else None)


def pareto_front(df: pd.DataFrame, objectives: Sequence[tuple[str, str] | str] = DEFAULT_OBJECTIVES, *,
                 filters: Mapping[str, Any] | None = None, only_ok: bool = True) -> pd.Index:
    """Index labels of the first front (see `pareto_set` for the counts of what was left out)."""
    return pareto_set(df, objectives, filters=filters, only_ok=only_ok).indices


def pareto_by_level(df: pd.DataFrame, objectives: Sequence[tuple[str, str] | str] = DEFAULT_OBJECTIVES, *,
                    pooled: bool = False, only_ok: bool = True) -> list[tuple[str | None, ParetoSet]]:
    """One Pareto set per budget level, ascending (a front pooled over budgets holds mostly the largest
    budget's trials: a bigger budget buys a lower loss at the same memory). Trials off every level form
    one more group labelled None. pooled=True: one set over every row, labelled None."""
    rows = C.ok_rows(df) if only_ok else df
    if pooled or rows.empty:
        return [(None, pareto_set(rows, objectives, only_ok=False))]
    groups: list[tuple[str | None, pd.DataFrame]] = [(label, g) for label, _, g in C.budget_groups(rows)]
    placed = pd.Index([]).append([g.index for _, g in groups]) if groups else pd.Index([])
    off = rows.drop(index=placed)
    if not off.empty:
        groups.append((None, off))
    return [(label, pareto_set(g, objectives, only_ok=False)) for label, g in groups]
