"""Batched robust least squares: the fitting engine behind IsoFLOP parabolas and their bootstrap.

One M-estimator solved by iteratively reweighted least squares (IRLS), vectorised over a batch
of weightings of the same points, so that 1000 bootstrap refits cost a few numpy calls instead of
1000 optimiser runs. A bootstrap resample is a weighting: w_i = how often point i was drawn.

Loss functions follow scipy.optimize.least_squares exactly (z = (r / f_scale)^2, cost =
0.5 * f_scale^2 * sum rho(z)), so a batch-of-one fit here has the same minimiser as
`least_squares(..., loss=name, f_scale=scale)` (tests/analysis/test_robust.py checks it):
  linear  rho = z                      IRLS weight rho'(z) = 1
  huber   rho = z | 2 sqrt(z) - 1      weight 1 | 1/sqrt(z)      (z <= 1 | z > 1)
  soft_l1 rho = 2 (sqrt(1 + z) - 1)    weight 1/sqrt(1 + z)
  cauchy  rho = log(1 + z)             weight 1/(1 + z)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

RobustLoss = Literal["linear", "huber", "soft_l1", "cauchy"]
ROBUST_LOSSES: tuple[str, ...] = ("linear", "huber", "soft_l1", "cauchy")
MAD_TO_SIGMA = 1.4826  # MAD of a normal sample -> its standard deviation

_WEIGHTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda z: np.ones_like(z),
    "huber": lambda z: np.where(z <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(z, 1.0))),
    "soft_l1": lambda z: 1.0 / np.sqrt(1.0 + z),
    "cauchy": lambda z: 1.0 / (1.0 + z),
}


def check_loss(loss: str) -> RobustLoss:
    if loss not in _WEIGHTS:
        raise ValueError(f"robust_loss={loss!r} is invalid: expected one of {', '.join(ROBUST_LOSSES)}")
    return loss  # type: ignore[return-value]


def weighted_lstsq(A_NP: np.ndarray, y_N: np.ndarray, w_BN: np.ndarray) -> np.ndarray:
    """Solve min sum_i w_bi (A_i . beta_b - y_i)^2 for each row b of w; singular rows -> NaN."""
    n, p = A_NP.shape
    # Normal equations for every row at once as two matmuls (BLAS) against per-point outer products.
    AtWA_BPP = (w_BN @ (A_NP[:, :, None] * A_NP[:, None, :]).reshape(n, p * p)).reshape(-1, p, p)
    AtWy_BP = w_BN @ (A_NP * y_N[:, None])
    # Condition check relative to the diagonal: a weighting that leaves fewer distinct x than
    # parameters makes the normal matrix singular (det ~ 0 up to rounding).
    scale_BP = np.sqrt(np.maximum(np.einsum("bpp->bp", AtWA_BPP), 1e-300))
    norm_BPP = AtWA_BPP / scale_BP[:, :, None] / scale_BP[:, None, :]
    ok_B = np.abs(np.linalg.det(norm_BPP)) > 1e-10
    beta_BP = np.full(AtWy_BP.shape, np.nan)
    if ok_B.any():
        beta_BP[ok_B] = np.linalg.solve(norm_BPP[ok_B], (AtWy_BP / scale_BP)[ok_B][..., None])[..., 0]
        beta_BP[ok_B] /= scale_BP[ok_B]
    return beta_BP


def _weights_inplace(z_BN: np.ndarray, loss: str) -> np.ndarray:
    """IRLS weights rho'(z), computed in place in z (the arrays are bootstrap x points large)."""
    if loss == "soft_l1":
        z_BN += 1.0
        np.sqrt(z_BN, out=z_BN)
        np.reciprocal(z_BN, out=z_BN)
        return z_BN
    if loss == "cauchy":
        z_BN += 1.0
        np.reciprocal(z_BN, out=z_BN)
        return z_BN
    return _WEIGHTS[loss](z_BN)


def irls(A_NP: np.ndarray, y_N: np.ndarray, w_BN: np.ndarray, *, loss: RobustLoss, f_scale: float,
         beta0_BP: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Robust fit per batch row: minimise sum_i w_bi rho((A_i . beta_b - y_i)^2 / f_scale^2).

    Rows stop iterating once their largest coefficient step is <= tol * max(|y|, 1); rows whose
    weighting is singular stay NaN.
    """
    check_loss(loss)
    if not f_scale > 0:
        raise ValueError(f"f_scale={f_scale!r} is invalid: expected a number > 0")
    if loss == "linear":  # closed form for every weighting; a starting point has nothing to add
        return weighted_lstsq(A_NP, y_N, w_BN)
    beta_BP = weighted_lstsq(A_NP, y_N, w_BN) if beta0_BP is None else beta0_BP.copy()
    inv_f2 = 1.0 / f_scale**2
    limit = tol * max(float(np.max(np.abs(y_N))), 1.0)
    active = np.flatnonzero(np.isfinite(beta_BP).all(axis=1))
    for _ in range(max_iter):
        if active.size == 0:
            break
        r_KN = beta_BP[active] @ A_NP.T - y_N
        np.multiply(r_KN, r_KN, out=r_KN)
        r_KN *= inv_f2
        weights_KN = _weights_inplace(r_KN, loss)
        weights_KN *= w_BN[active]
        new_KP = weighted_lstsq(A_NP, y_N, weights_KN)
        step_K = np.abs(new_KP - beta_BP[active]).max(axis=1)
        beta_BP[active] = new_KP
        active = active[np.isfinite(step_K) & (step_K > limit)]
    return beta_BP


def robust_scale(residuals_N: np.ndarray, n_params: int, floor: float) -> float:
    """MAD-based noise scale of residuals (df-corrected), never below `floor`."""
    n = residuals_N.size
    mad = float(np.median(np.abs(residuals_N - np.median(residuals_N)))) if n else 0.0
    correction = math.sqrt(n / max(n - n_params, 1))
    return max(MAD_TO_SIGMA * mad * correction, floor)


def fit_robust(A_NP: np.ndarray, y_N: np.ndarray, *, loss: RobustLoss,
               f_scale: float | None = None) -> tuple[np.ndarray, float]:
    """Single robust fit; f_scale None: estimate it (OLS -> MAD scale -> robust -> MAD scale -> robust)."""
    ones_1N = np.ones((1, y_N.size))
    beta_P = weighted_lstsq(A_NP, y_N, ones_1N)[0]
    floor = 1e-9 * max(float(np.median(np.abs(y_N))), 1.0)
    scale = 0.0 if f_scale is None else f_scale
    for _ in range(1 if f_scale is not None else 2):
        if f_scale is None:
            scale = robust_scale(A_NP @ np.nan_to_num(beta_P) - y_N, A_NP.shape[1], floor)
        beta_P = irls(A_NP, y_N, ones_1N, loss=loss, f_scale=float(scale), beta0_BP=beta_P[None])[0]
    return beta_P, float(scale)
