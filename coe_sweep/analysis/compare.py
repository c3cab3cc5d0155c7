"""CoE vs MoE at equal training compute: the paper's iso-compute comparison, done honestly.

The paper holds C x K constant and reads memory as `memory_allocated` after a step. Here each
budget level is a fixed training-FLOPs budget (every trial trained tokens = B / its own analytic
train FLOPs per token, which counts the router and the shared expert C times), so at each budget
the best CoE (family 'coe': iterations > 1) and the best MoE (family 'moe': iterations == 1) --
lowest final val loss among status-ok trials -- are set side by side with what each actually
spent: measured train FLOPs, measured peak memory, parameters. Differences are CoE minus MoE
(negative loss difference: CoE is better); ratios are CoE / MoE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C

SUMMARY_COLUMNS = (C.RUN_ID, C.CONFIG_HASH, C.FINAL_VAL_LOSS, C.PEAK_MEMORY_BYTES, C.ESTIMATED_MEMORY_BYTES,
                   C.TRAIN_FLOPS, C.TRAIN_FLOPS_PER_TOKEN, C.PARAMS_TOTAL, C.PARAMS_ACTIVE, C.TOKENS,
                   C.TOKENS_PER_S, C.ITERATIONS, C.TOP_K, C.N_EXPERTS, C.N_LAYERS, C.D_MODEL, C.D_EXPERT)
_NUMERIC = (C.FINAL_VAL_LOSS, C.PEAK_MEMORY_BYTES, C.ESTIMATED_MEMORY_BYTES, C.TRAIN_FLOPS,
            C.TRAIN_FLOPS_PER_TOKEN, C.PARAMS_TOTAL, C.PARAMS_ACTIVE, C.TOKENS, C.TOKENS_PER_S,
            C.ITERATIONS, C.TOP_K, C.N_EXPERTS, C.N_LAYERS, C.D_MODEL, C.D_EXPERT)


@dataclass
class BudgetComparison:
    budget_label: str
    budget_flops: float
    coe: dict[str, Any] | None  # best CoE trial (SUMMARY_COLUMNS), None when no ok CoE trial
    moe: dict[str, Any] | None
    n_coe: int  # ok trials with a finite loss, per family
    n_moe: int
    winner: str | None  # 'coe' | 'moe' | 'tie' | None (a side missing)
    loss_diff: float | None  # CoE - MoE
    loss_rel_diff: float | None  # (CoE - MoE) / MoE
    peak_memory_diff_bytes: float | None
    peak_memory_ratio: float | None
    estimated_memory_diff_bytes: float | None
    train_flops_diff: float | None
    train_flops_ratio: float | None
    params_total_diff: float | None
    params_active_diff: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable(dict(self.__dict__))  # type: ignore[return-value]


def _summary(rows: pd.DataFrame, pos: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in SUMMARY_COLUMNS:
        if col not in rows.columns:
            continue
        if col in _NUMERIC:
            value = C.numeric(rows.iloc[[pos]], col)[0]
            out[col] = float(value) if np.isfinite(value) else None
        else:
            out[col] = C.jsonable(rows[col].iloc[pos])
    return out


def _diff(a: dict[str, Any], b: dict[str, Any], col: str) -> float | None:
    x, y = a.get(col), b.get(col)
    return None if x is None or y is None else float(x - y)


def _ratio(a: dict[str, Any], b: dict[str, Any], col: str) -> float | None:
    x, y = a.get(col), b.get(col)
    return None if x is None or y is None or y == 0 else float(x / y)


def _best(rows: pd.DataFrame) -> tuple[dict[str, Any] | None, int]:
    loss = C.numeric(rows, C.FINAL_VAL_LOSS)
    finite = np.flatnonzero(np.isfinite(loss))
    if finite.size == 0:
        return None, 0
    return _summary(rows, int(finite[np.argmin(loss[finite])])), int(finite.size)


def coe_vs_moe(df: pd.DataFrame, *, rel_tie: float = 0.0) -> list[BudgetComparison]:
    """Best CoE and best MoE per budget level (ascending FLOPs), with their differences.

    rel_tie: |loss_diff| <= rel_tie * MoE loss counts as a tie (default 0: only exact ties).
    """
    C.require_columns(df, [C.FINAL_VAL_LOSS], "coe_vs_moe")
    rows = C.ok_rows(df)
    if rows.empty:
        return []
    fam = C.families(rows)
    out = []
    for label, flops, group in C.budget_groups(rows):
        gfam = fam.loc[group.index]
        coe, n_coe = _best(group[(gfam == "coe").to_numpy()])
        moe, n_moe = _best(group[(gfam == "moe").to_numpy()])
        cmp = BudgetComparison(label, flops, coe, moe, n_coe, n_moe, None, None, None, None, None,
                               None, None, None, None, None)
        if coe is None or moe is None:
            missing = [name for name, side in (("CoE", coe), ("MoE", moe)) if side is None]
            cmp.notes.append(f"no ok {' or '.join(missing)} trial with a finite loss at this budget")
            out.append(cmp)
            continue
        cmp.loss_diff = _diff(coe, moe, C.FINAL_VAL_LOSS)
        cmp.loss_rel_diff = _ratio(coe, moe, C.FINAL_VAL_LOSS) - 1.0  # type: ignore[operator]
        tie = abs(cmp.loss_diff) <= rel_tie * abs(moe[C.FINAL_VAL_LOSS])  # type: ignore[arg-type]
        cmp.winner = "tie" if tie else ("coe" if cmp.loss_diff < 0 else "moe")  # type: ignore[operator]
        cmp.peak_memory_diff_bytes = _diff(coe, moe, C.PEAK_MEMORY_BYTES)
        cmp.peak_memory_ratio = _ratio(coe, moe, C.PEAK_MEMORY_BYTES)
        cmp.estimated_memory_diff_bytes = _diff(coe, moe, C.ESTIMATED_MEMORY_BYTES)
        cmp.train_flops_diff = _diff(coe, moe, C.TRAIN_FLOPS)
        cmp.train_flops_ratio = _ratio(coe, moe, C.TRAIN_FLOPS)
        cmp.params_total_diff = _diff(coe, moe, C.PARAMS_TOTAL)
        cmp.params_active_diff = _diff(coe, moe, C.PARAMS_ACTIVE)
        if cmp.peak_memory_diff_bytes is None:
            cmp.notes.append("measured peak memory missing on one side")
        if cmp.train_flops_ratio is not None and abs(cmp.train_flops_ratio - 1.0) > 0.05:
            cmp.notes.append(f"train FLOPs differ by {cmp.train_flops_ratio - 1.0:+.1%}: not iso-compute")
        out.append(cmp)
    return out


def comparison_frame(comparisons: list[BudgetComparison]) -> pd.DataFrame:
    """Flat table (one row per budget) for terminals and CSV: coe_* / moe_* columns plus differences."""
    records = []
    for cmp in comparisons:
        record = {k: v for k, v in cmp.to_dict().items() if k not in ("coe", "moe", "notes")}
        for side in ("coe", "moe"):
            for key, value in (getattr(cmp, side) or {}).items():
                record[f"{side}_{key}"] = value
        record["notes"] = "; ".join(cmp.notes)
        records.append(record)
    return pd.DataFrame.from_records(records)
