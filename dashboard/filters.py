"""Row filters shared by the trials, Pareto and comparison endpoints (status, budget, family).

A budget is named by its label (as logged, e.g. `1e15`) or by its FLOPs as a number (matched to
1e-6 relative); an unknown budget is a 422 that lists the sweep's budgets.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import Query

from coe_sweep.analysis import columns as C
from dashboard.deps import invalid_query
from dashboard.schemas import Family, TrialStatus

StatusQ = Annotated[list[TrialStatus] | None, Query(description="keep these trial statuses (repeatable)")]
BudgetQ = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$",
                                      description="budget label or FLOPs, e.g. 1e15")]
FamilyQ = Annotated[Family | None, Query(description="moe | coe | dense")]


def budget_mask(frame: pd.DataFrame, budget: str) -> pd.Series:
    labels = frame[C.BUDGET_LABEL].astype(str) if C.BUDGET_LABEL in frame.columns else None
    if labels is not None and (labels == budget).any():
        return labels == budget
    try:
        flops = float(budget)
    except ValueError:
        flops = float("nan")
    if np.isfinite(flops) and C.BUDGET_FLOPS in frame.columns:
        values = C.numeric(frame, C.BUDGET_FLOPS)
        mask = np.isclose(values, flops, rtol=1e-6, atol=0.0)
        if mask.any():
            return pd.Series(mask, index=frame.index)
    known = sorted(set(labels)) if labels is not None else sorted({f"{v:.6g}" for v in C.numeric(frame, C.BUDGET_FLOPS)})
    invalid_query("budget", budget, f"a budget label or FLOPs of this sweep: {', '.join(known) or '(none yet)'}")


def apply_filters(frame: pd.DataFrame, *, status: list[str] | None = None, budget: str | None = None,
                  family: str | None = None) -> pd.DataFrame:
    if frame.empty:
        return frame
    if status:
        frame = frame[frame[C.STATUS].astype(str).isin(status)] if C.STATUS in frame.columns else frame.iloc[:0]
    if budget is not None:
        frame = frame[budget_mask(frame, budget)] if not frame.empty else frame
    if family is not None:
        frame = frame[C.families(frame) == family] if not frame.empty else frame
    return frame


def describe(status: list[str] | None, budget: str | None, family: str | None) -> str:
    parts = [f"status in {status}" if status else "", f"budget={budget}" if budget else "",
             f"family={family}" if family else ""]
    return ", ".join(p for p in parts if p) or "no filters"
