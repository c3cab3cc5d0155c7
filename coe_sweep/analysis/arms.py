"""Arms, seeds and configs of a trials frame: which trials are replicates and which compare pairwise.

The one adapter between a sweep's trials frame and the comparison statistics (`paired`, `multiplier`,
`compare`). A *cell* is one config of one arm at one budget level with its per-seed final losses:
seeds of a config are replicates, and seed i of two configs used the same seed value (same batch
order), so two cells pair up over the seeds they share.

Frames written before trials carried `arm` and `seed` columns still work: `trial_keys` derives the arm
from the architecture (`dense`, `moe`, `coe-C2`, ...), reads the seed from `train.seed` (else 0), and
keys a config by its params without `train.seed` (what `config_hash` means once the seed is no longer
part of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C

# What a cell shows of its config (the model fields that tell arms apart).
DESCRIBE_COLUMNS = (C.ITERATIONS, C.TOP_K, C.N_EXPERTS, C.N_LAYERS, C.D_MODEL, C.D_EXPERT, "model.router_mode",
                    "model.inner_residual", "model.outer_residual", C.DENSE)


def derived_arms(df: pd.DataFrame) -> pd.Series:
    """Arm from the architecture: `dense`, `moe` (one iteration), `coe-C<iterations>`."""
    iterations = C.numeric(df, C.ITERATIONS)
    family = C.families(df)
    names = [("dense" if fam == "dense" else f"coe-C{int(it)}" if np.isfinite(it) and it > 1 else
              "coe" if fam == "coe" else "moe") for fam, it in zip(family, iterations, strict=True)]
    return pd.Series(names, index=df.index, dtype=object)


def _config_keys(df: pd.DataFrame) -> pd.Series:
    """Config identity without the seed: `config_hash` once frames carry a `seed` column, else the
    trial's params minus `train.seed` (older frames hash the seed into config_hash)."""
    if C.SEED in df.columns and C.CONFIG_HASH in df.columns:
        return df[C.CONFIG_HASH].astype(str)
    params = sorted(c for c in df.columns if str(c).startswith(C.PARAM_PREFIXES) and c != C.TRAIN_SEED)
    if not params:
        return df[C.CONFIG_HASH].astype(str) if C.CONFIG_HASH in df.columns else df.index.to_series().astype(str)
    keys = ["|".join(map(str, row)) for row in df[params].itertuples(index=False, name=None)]
    return pd.Series(keys, index=df.index, dtype=object)


def trial_keys(df: pd.DataFrame) -> pd.DataFrame:
    """Columns arm, seed (int), config (key without the seed) for every row of a trials frame."""
    arm = derived_arms(df)
    if C.ARM in df.columns:
        given = df[C.ARM]
        arm = given.where(given.notna() & (given.astype(str) != ""), arm).astype(str)
    seed_col = C.SEED if C.SEED in df.columns else C.TRAIN_SEED if C.TRAIN_SEED in df.columns else None
    seed = C.numeric(df, seed_col) if seed_col else np.zeros(len(df))
    return pd.DataFrame({"arm": arm.to_numpy(), "seed": np.nan_to_num(seed, nan=0.0).astype(int),
                         "config": _config_keys(df).to_numpy()}, index=df.index)


@dataclass(frozen=True)
class Cell:
    """One config of one arm at one budget: its final val loss per seed (one value per seed)."""

    arm: str
    budget_label: str
    budget_flops: float
    config: str  # short id: the config hash of its first trial (or the key when there is none)
    seeds: tuple[int, ...]  # ascending
    losses: tuple[float, ...]  # per seed, same order
    peak_memory_bytes: float | None  # median over seeds (it barely moves with the seed)
    wall_s: float | None  # mean over seeds
    train_flops: float | None  # mean over seeds
    describe: dict[str, object]  # model fields that tell the config apart

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def mean(self) -> float:
        return float(np.mean(self.losses))


def _finite_stat(values: np.ndarray, stat: str) -> float | None:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    return float(np.median(finite) if stat == "median" else np.mean(finite))


def _cell(arm: str, label: str, flops: float, rows: pd.DataFrame, seeds: np.ndarray) -> Cell:
    loss = C.numeric(rows, C.FINAL_VAL_LOSS)
    per_seed = pd.Series(loss).groupby(seeds).mean()  # a (config, seed) logged twice counts once
    first = rows.iloc[0]
    config = str(first[C.CONFIG_HASH])[:12] if C.CONFIG_HASH in rows.columns and pd.notna(first[C.CONFIG_HASH]) \
        else str(first.name)
    describe = {c.removeprefix("model."): C.jsonable(first[c]) for c in DESCRIBE_COLUMNS if c in rows.columns}
    return Cell(arm=arm, budget_label=label, budget_flops=flops, config=config,
                seeds=tuple(int(s) for s in per_seed.index), losses=tuple(float(v) for v in per_seed.to_numpy()),
                peak_memory_bytes=_finite_stat(C.numeric(rows, C.PEAK_MEMORY_BYTES), "median"),
                wall_s=_finite_stat(C.numeric(rows, C.WALL_S), "mean"),
                train_flops=_finite_stat(C.numeric(rows, C.TRAIN_FLOPS), "mean"), describe=describe)


def cells(df: pd.DataFrame) -> list[Cell]:
    """Every (arm, budget, config) cell of the usable trials (status ok, finite final val loss),
    budgets ascending, arms in order of first appearance."""
    C.require_columns(df, [C.FINAL_VAL_LOSS], "arm comparison")
    rows = C.ok_rows(df)
    rows = rows[np.isfinite(C.numeric(rows, C.FINAL_VAL_LOSS))]
    if rows.empty:
        return []
    keys = trial_keys(rows)
    out: list[Cell] = []
    for label, flops, group in C.budget_groups(rows):
        gkeys = keys.loc[group.index]
        for (arm, _config), idx in gkeys.groupby(["arm", "config"], sort=False).groups.items():
            out.append(_cell(str(arm), label, flops, group.loc[idx], gkeys.loc[idx, "seed"].to_numpy()))
    return out


def arm_order(df: pd.DataFrame) -> list[str]:
    """Arms in order of first appearance among the frame's rows (a sweep's order: the spec's, for a grid)."""
    return list(dict.fromkeys(trial_keys(df)["arm"])) if not df.empty else []


def default_baseline(arms: list[str]) -> str | None:
    """The `moe` arm when there is one, else the first arm (the shared contract's default)."""
    return "moe" if "moe" in arms else (arms[0] if arms else None)


def best_cells(group: list[Cell]) -> dict[str, tuple[Cell, int]]:
    """Per arm, its best config (lowest mean loss over its seeds) and how many configs it had."""
    out: dict[str, tuple[Cell, int]] = {}
    counts: dict[str, int] = {}
    for cell in group:
        counts[cell.arm] = counts.get(cell.arm, 0) + 1
        if cell.arm not in out or cell.mean < out[cell.arm][0].mean:
            out[cell.arm] = (cell, 0)
    return {arm: (cell, counts[arm]) for arm, (cell, _) in out.items()}
