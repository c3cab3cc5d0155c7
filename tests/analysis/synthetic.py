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


# --- trials from a known parametric law (Approach 3 / the CoE law) ----------------------------------
CHINCHILLA_THETA = (1.69, 406.4, 410.7, 0.34, 0.28)  # Hoffmann et al. 2022, eq. 10: E, A, B, alpha, beta


def flops_per_token_of(n: float, iterations: int, slope: float = 1.0) -> float:
    """FLOPs/token of a simulated arm: 6 N^slope, 15% more per extra iteration (router and shared expert
    run C times), so the map the analysis fits is known."""
    return 6.0 * (1.0 + 0.15 * (iterations - 1)) * n**slope


def law_frame(theta: tuple[float, ...], budgets: list[float], *, psi: float = 1.0, gamma: float = 0.0,
              chain: str = "power", arms: tuple[tuple[int, int, int], ...] = ((1, 8, 2),), seeds: int = 1,
              noise: float = 0.01, seed: int = 0, sizes: int = 7, span: float = 6.0,
              off_centre: float = 0.0, outliers: float = 0.0, shift: float = 1.0) -> pd.DataFrame:
    """Trials around each arm's true optimum at each budget, losses from
    L = E + A / (N C^(1-psi) S^gamma)^alpha + B / D^beta + N(0, noise); arms are (C, n_experts, top_k).

    chain 'power' (h = C^(1-psi)) or 'linear' (h = 1 + (1-psi)(C-1)); D = budget / flops_per_token_of(N, C).
    Params are strings as MLflow stores them; each config's seeds share its config hash. off_centre: the
    size grid is centred on the true optimum times exp(U(-off_centre, off_centre)) per budget and arm, as a
    real sweep's guess of the optimum is off (and Approach 2's parabola then leans). outliers: the fraction
    of trials that went wrong but finished (loss + U(0.1, 0.5)); shift: every grid centred at shift x N*.
    """
    E, A, B, alpha, beta = theta
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for c_flops in budgets:
        for iterations, experts, top_k in arms:
            h = iterations ** (1 - psi) if chain == "power" else 1 + (1 - psi) * (iterations - 1)
            m = h * (experts / top_k) ** gamma
            k = flops_per_token_of(1.0, iterations)
            n_opt = (alpha * A * m**-alpha * c_flops**beta / (beta * B * k**beta)) ** (1 / (alpha + beta))
            centre = shift * n_opt * (np.exp(rng.uniform(-off_centre, off_centre)) if off_centre else 1.0)
            for n in np.geomspace(centre / span, centre * span, sizes):
                tokens = c_flops / flops_per_token_of(n, iterations)
                mean = E + A / (n * m) ** alpha + B / tokens**beta
                config = f"{c_flops:.3g}-{iterations}-{experts}-{top_k}-{n:.6g}"
                for s in range(seeds):
                    rows.append({
                        "run_id": f"r{len(rows)}", "config_hash": config, "status": "ok",
                        "budget_label": f"{c_flops:.3g}", "budget_flops": c_flops, "family": "coe" if iterations > 1 else "moe",
                        "params_active": float(n), "tokens": float(tokens), "train_flops": float(c_flops),
                        "train_flops_per_token": flops_per_token_of(n, iterations),
                        "final_val_loss": float(mean + rng.normal(0.0, noise)
                                                + (rng.uniform(0.1, 0.5) if rng.random() < outliers else 0.0)),
                        "model.iterations": str(iterations), "model.n_experts": str(experts), "model.top_k": str(top_k),
                        "train.seed": str(s)})
    return pd.DataFrame(rows)
