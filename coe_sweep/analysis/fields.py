"""Which config fields vary across a sweep, and the trials table aggregated over seeds.

A sweep's trials frame carries every flattened run-spec field as a `model.` / `train.` / `data.` column;
most are constant. `varying_fields` names the ones that take more than one value among the trials (the
router mode, the residual switches, top_k, lr ... whatever this sweep's space moves), leaving out the
seed (its own column), execution-only fields (coe_sweep.trial.EXECUTION_ONLY_FIELDS: they never change
what a trial computes) and the horizon (the budget columns say it). `aggregate_by_config` collapses a
config's seeds into one row: mean, standard deviation and n of each metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.trial import EXECUTION_ONLY_FIELDS

_NOT_CONFIG = frozenset({C.TRAIN_SEED} | {f"{section}.{name}" for section, names in EXECUTION_ONLY_FIELDS.items()
                                          for name in names})
# Identity columns the table always shows first, in this order.
IDENTITY_COLUMNS = (C.TRIAL_ID, C.ARM, C.SEED, C.BUDGET_LABEL, C.STATUS)
AGGREGATED_METRICS = (C.FINAL_VAL_LOSS, C.PEAK_MEMORY_BYTES, C.WALL_S, C.TRAIN_FLOPS, C.TOKENS)


def _distinct(series: pd.Series) -> int:
    return int(series.dropna().map(str).nunique())


def varying_fields(frame: pd.DataFrame) -> list[str]:
    """Config columns (model./train./data.) with more than one distinct value among the trials, in frame order."""
    return [str(c) for c in frame.columns
            if str(c).startswith(C.PARAM_PREFIXES) and str(c) not in _NOT_CONFIG and _distinct(frame[c]) > 1]


def table_columns(frame: pd.DataFrame) -> list[str]:
    """What the trials table shows: identity, every varying field, then the main results (present ones only)."""
    results = (C.FINAL_VAL_LOSS, C.PEAK_MEMORY_BYTES, C.PARAMS_ACTIVE, C.PARAMS_TOTAL, C.TOKENS, C.WALL_S, C.REASON)
    wanted = [*IDENTITY_COLUMNS, *varying_fields(frame), *results]
    return [c for c in dict.fromkeys(wanted) if c in frame.columns]


def aggregate_by_config(frame: pd.DataFrame, metrics: Sequence[str] = AGGREGATED_METRICS) -> pd.DataFrame:
    """One row per (config, budget) over its finished seeds: arm, the varying fields, then `<metric>.mean`,
    `<metric>.std` (ddof=1; NaN for one seed) and `n` (seeds with a finite loss). Sorted by mean loss."""
    ok = C.ok_rows(frame)
    keys = [c for c in (C.CONFIG_HASH, C.BUDGET_LABEL) if c in ok.columns]
    present = [m for m in metrics if m in ok.columns]
    if ok.empty or C.CONFIG_HASH not in keys:
        return pd.DataFrame(columns=[*keys, C.ARM, "n"])
    descriptive = [c for c in (C.ARM, *varying_fields(frame)) if c in ok.columns and c not in keys]
    values = ok[present].apply(pd.to_numeric, errors="coerce")
    grouped = pd.concat([ok[keys + descriptive], values], axis=1).groupby(keys, sort=False, dropna=False)
    out = grouped[descriptive].first() if descriptive else grouped.size().to_frame().iloc[:, :0]
    for metric in present:
        out[f"{metric}.mean"] = grouped[metric].mean()
        out[f"{metric}.std"] = grouped[metric].std(ddof=1)
    loss_key = C.FINAL_VAL_LOSS if C.FINAL_VAL_LOSS in present else None
    out["n"] = grouped[loss_key].count() if loss_key else grouped.size()
    out = out.reset_index()
    if loss_key:
        out = out.sort_values(f"{loss_key}.mean", kind="stable", na_position="last")
    return out.replace([np.inf, -np.inf], np.nan).reset_index(drop=True)
