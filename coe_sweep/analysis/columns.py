"""The one place that names the columns analysis reads from a trials frame.

The frame is `coe_sweep.tracking.TrackingStore.trials_frame` (or anything with the same columns):
one row per trial, finals as floats, params as `model.<field>` / `train.<field>` / `data.<field>`
(MLflow stores params as strings, so `numeric()` coerces them). The dashboard and the CLI import
the objective and axis names from here so that all three speak the same names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from coe_sweep.analysis import levels
from coe_sweep.trial import OBJECTIVES as TRIAL_OBJECTIVES

log = logging.getLogger(__name__)

Direction = Literal["min", "max"]

# --- identity and status ---
RUN_ID = "run_id"
CONFIG_HASH = "config_hash"  # the config, without its seed: a config's seeds share it
SEED = "seed"  # int, 0 .. search.seeds-1 (seed i of every arm pairs up)
TRIAL_ID = "trial_id"  # <config hash[:8]>-s<seed>
ARM = "arm"  # the architecture a trial belongs to (named in the spec, or dense | moe | coe-C2 ...)
STATUS = "status"
STATUS_OK = "ok"
REASON = "reason"
BUDGET_LABEL = "budget_label"
BUDGET_FLOPS = "budget_flops"
FAMILY = "family"
FAMILIES = ("moe", "coe", "dense")
ARM = "arm"  # the architecture a trial belongs to (a spec's bundle name, else derived: moe, coe-C2, ...)
SEED = "seed"  # 0..search.seeds-1: train.seed of the trial
TRIAL_ID = "trial_id"  # f"{config_hash[:8]}-s{seed}"
SIMULATED = "simulated"  # True: the simulated law, not training (`launch --simulate`)

# --- final metrics ---
FINAL_VAL_LOSS = "final_val_loss"
PEAK_MEMORY_BYTES = "peak_memory_bytes"
ESTIMATED_MEMORY_BYTES = "estimated_memory_bytes"
PARAMS_TOTAL = "params_total"
PARAMS_ACTIVE = "params_active"
TRAIN_FLOPS = "train_flops"
TRAIN_FLOPS_PER_TOKEN = "train_flops_per_token"
TOKENS = "tokens"
TOKENS_PER_S = "tokens_per_s"
WALL_S = "wall_s"

# --- params (flattened run spec) ---
ITERATIONS = "model.iterations"
TOP_K = "model.top_k"
N_EXPERTS = "model.n_experts"
N_LAYERS = "model.n_layers"
D_MODEL = "model.d_model"
D_EXPERT = "model.d_expert"
DENSE = "model.dense"
TRAIN_SEED = "train.seed"
PARAM_PREFIXES = ("model.", "train.", "data.")

# The "config family" a scaling answer names: what one changes to move along the frontier.
CONFIG_FAMILY_COLUMNS = (FAMILY, ITERATIONS, TOP_K, N_EXPERTS, N_LAYERS, D_MODEL, D_EXPERT)

# IsoFLOP x axes: short name -> column (the column name itself is accepted too).
X_AXES: Mapping[str, str] = {
    "params_active": PARAMS_ACTIVE,
    "params_total": PARAMS_TOTAL,
    "tokens": TOKENS,
    "iterations": ITERATIONS,
}

# Objectives for Pareto sets: short name -> (column, default direction), from the one objective registry
# (coe_sweep.trial.OBJECTIVES). Column names are accepted too.
OBJECTIVES: Mapping[str, tuple[str, Direction]] = {name: (o.metric, o.direction)
                                                   for name, o in TRIAL_OBJECTIVES.items()}
DIRECTIONS: tuple[Direction, ...] = ("min", "max")


def _accepted(mapping: Mapping[str, object]) -> list[str]:
    names = set(mapping)
    for value in mapping.values():
        names.add(value[0] if isinstance(value, tuple) else str(value))
    return sorted(names)


def accepted_objectives() -> list[str]:
    """Every name `resolve_objective` accepts (short names and column names)."""
    return _accepted(OBJECTIVES)


def accepted_x_axes() -> list[str]:
    return _accepted(X_AXES)


def resolve_objective(name: str) -> tuple[str, Direction]:
    """Short name or column -> (column, default direction); ValueError naming the bad name."""
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    for column, direction in OBJECTIVES.values():
        if name == column:
            return column, direction
    raise ValueError(f"objective={name!r} is unknown: expected one of {', '.join(accepted_objectives())}")


def resolve_direction(name: str, direction: str) -> Direction:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} for objective {name!r} is invalid: expected 'min' or 'max'")
    return direction


def resolve_x(name: str) -> str:
    """IsoFLOP x axis short name or column -> column; ValueError naming the bad name."""
    if name in X_AXES:
        return X_AXES[name]
    if name in X_AXES.values():
        return name
    raise ValueError(f"x={name!r} is unknown: expected one of {', '.join(accepted_x_axes())}")


def require_columns(df: pd.DataFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: the trials frame lacks column(s) {missing}; it has {sorted(map(str, df.columns))}")


def numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    """Column as float64 (params arrive as strings from MLflow); unparseable or missing -> NaN."""
    if column not in df.columns:
        return np.full(len(df), np.nan)
    series = df[column]
    values: np.ndarray = (series if series.dtype == bool else pd.to_numeric(series, errors="coerce")).to_numpy(
        dtype=float)
    return values


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The usable trials: status == 'ok' (every row when the frame has no status column)."""
    if STATUS not in df.columns:
        return df
    return df[df[STATUS].astype(str) == STATUS_OK]


def families(df: pd.DataFrame) -> pd.Series:
    """Family per row: the `family` column where it holds moe|coe|dense, else derived (dense flag,
    iterations > 1 -> coe, else moe)."""
    iterations = numeric(df, ITERATIONS)
    dense = df[DENSE].astype(str).str.lower().isin(("true", "1")) if DENSE in df.columns else False
    derived = pd.Series(np.where(dense, "dense", np.where(iterations > 1, "coe", "moe")), index=df.index, dtype=str)
    if FAMILY not in df.columns:
        return derived
    given = df[FAMILY].astype(str)
    return given.where(given.isin(FAMILIES), derived)


def trial_flops(df: pd.DataFrame) -> np.ndarray:
    """Each trial's training FLOPs: its planned `budget_flops`, else its measured `train_flops`."""
    planned = numeric(df, BUDGET_FLOPS)
    return np.where(np.isfinite(planned), planned, numeric(df, TRAIN_FLOPS))


def budget_groups(df: pd.DataFrame, tol_log: float = levels.DEFAULT_TOL_LOG) -> list[tuple[str, float, pd.DataFrame]]:
    """(label, budget FLOPs, rows) per budget level, ascending in FLOPs.

    Levels and the placement of trials without a label follow `levels.assign_levels` (nearest level
    within tol_log in ln FLOPs); trials off every level are left out (logged). A labelled level's
    FLOPs is the median `budget_flops` of its rows, falling back to the median measured `train_flops`.
    """
    if BUDGET_LABEL not in df.columns and BUDGET_FLOPS not in df.columns and TRAIN_FLOPS not in df.columns:
        raise ValueError(f"the trials frame needs {BUDGET_LABEL!r}, {BUDGET_FLOPS!r} or {TRAIN_FLOPS!r} "
                         "to group budget levels")
    labels = df[BUDGET_LABEL].tolist() if BUDGET_LABEL in df.columns else [None] * len(df)
    flops = trial_flops(df)
    assigned, found = levels.assign_levels(labels, flops, tol_log)
    keys = pd.Series(assigned, index=df.index, dtype=object)
    off = int(keys.isna().sum())
    if off:
        log.debug("%d trial(s) off every budget level (no label, FLOPs not within ln-distance %.3g of a level): "
                 "left out of the IsoFLOP groups", off, tol_log)
    groups: list[tuple[str, float, pd.DataFrame]] = []
    for level in found:
        rows = df[(keys == level.label).to_numpy()]
        if rows.empty:
            continue
        planned = numeric(rows, BUDGET_FLOPS)
        values = planned if np.isfinite(planned).any() else numeric(rows, TRAIN_FLOPS)
        finite = values[np.isfinite(values)]
        groups.append((level.label, float(np.median(finite)) if finite.size else float("nan"), rows))
    groups.sort(key=lambda g: (np.nan_to_num(g[1], nan=np.inf), g[0]))
    return groups


def jsonable(value: object) -> object:
    """Plain JSON types: numpy scalars/arrays -> python, NaN/inf -> None, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if hasattr(value, "value") and isinstance(value.value, str):  # str enums
        return value.value
    return value
