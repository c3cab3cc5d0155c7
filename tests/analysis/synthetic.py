"""Synthetic trials frames with known answers, shaped like TrackingStore.trials_frame.

Params are strings (as MLflow stores them); finals are floats. The true laws are stated where the
frame is built so each test can compare against them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def parabola_rows(label: str, budget_flops: float, xs: np.ndarray, x_opt: float, loss_opt: float,
                  curvature: float = 0.05, noise: float = 0.0, rng: np.random.Generator | None = None,
                  start: int = 0) -> list[dict]:
    """loss = loss_opt + curvature * ln(x / x_opt)^2 (+ N(0, noise)); tokens = C / (6 x)."""
    rows = []
    for i, x in enumerate(xs):
        loss = loss_opt + curvature * np.log(x / x_opt) ** 2
        if noise:
            loss += (rng or np.random.default_rng(0)).normal(0.0, noise)
        rows.append({"run_id": f"run{start + i}", "config_hash": f"h{start + i}", "status": "ok",
                     "budget_label": label, "budget_flops": budget_flops, "family": "moe",
                     "params_active": float(x), "params_total": float(4 * x),
                     "tokens": budget_flops / (6 * x), "final_val_loss": float(loss),
                     "model.iterations": "1", "model.top_k": "2"})
    return rows


def scaling_frame(budgets: list[float], x_opt_of: Callable[[float], float], loss_opt_of: Callable[[float], float],
                  noise: float, seed: int, points: int = 9, span: float = 8.0) -> pd.DataFrame:
    """Per budget C: 9 points log-spaced over [x*/span, x* span] around the true x*(C)."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for c in budgets:
        xs = np.geomspace(x_opt_of(c) / span, x_opt_of(c) * span, points)
        rows += parabola_rows(f"{c:.0e}", c, xs, x_opt_of(c), loss_opt_of(c), noise=noise, rng=rng, start=len(rows))
    return pd.DataFrame(rows)
