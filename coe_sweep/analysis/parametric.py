"""Parametric scaling laws L(N, D) fitted to every finished trial: Approach 3 and the CoE/MoE law.

The model (Hoffmann et al. 2022, eq. 2, with an effective size):

    L(N, D) = E + A / N_eff^alpha + B / D^beta,      N_eff = N * h(C; psi) * S^gamma

- N active parameters, D tokens, C chain iterations, S = n_experts / top_k (see `lawdata`).
- h(C; psi), the iterations term: 'none' h = 1 (Approach 3: the Chinchilla form); 'power'
  h = C^(1 - psi); 'linear' h = 1 + (1 - psi)(C - 1). psi = 0: an iteration is worth a fresh copy
  of the active parameters (h = C); psi = 1: it adds nothing (h = 1).
- S^gamma, the sparsity term: more routed experts per activated expert act as extra effective
  size, as the fine-grained / joint MoE laws scale the parameter term with the expert count and
  granularity (Krajewski et al. 2024, arXiv 2402.07871; Ludziejewski et al. 2025, arXiv 2502.05172).

Two fitters of the same model (`METHODS`):
- `varpro` (variable projection): for fixed phi = (alpha, beta[, psi][, gamma]) the model is linear
  in (E, A, B) >= 0, solved exactly by NNLS; phi is searched on a grid (every grid point at once
  through closed-form 3x3 normal equations), then refined by L-BFGS-B on the profiled least-squares
  error from the GRID_REFINE best grid points; the result is polished into a Huber M-estimate in loss
  (threshold HUBER_K x the MAD scale of the residuals, ROBUST_ROUNDS rounds) by Levenberg-Marquardt,
  so that a few wild trials (diverged-but-finite, mis-logged) do not pull the exponents.
- `huber_log`: Approach 3 as published: Huber loss (delta 1e-3) on ln L with L written as
  LSE(a - alpha ln N_eff, b - beta ln D, e), L-BFGS-B with the analytic gradient from Hoffmann's
  grid of starts, screened in one vectorised pass: the best (e, a, b) of each (alpha, beta) cell,
  then the START_REFINE best cells.
`benchmarks/law_recovery.py` measures both on simulated draws; DEFAULT_METHOD is the better one there.

Intervals: bootstrap over config groups (a replicate draws groups with replacement and takes all
their seeds, as weights), each replicate refitted by the same fitter from the point fit; basic bootstrap
intervals of every parameter and prediction (`laws.basic_interval`).
"""

from __future__ import annotations

import itertools
import warnings as pywarnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import OptimizeWarning, minimize, nnls

from coe_sweep.analysis.lawdata import LawData
from coe_sweep.analysis.robust import robust_scale

ChainForm = Literal["none", "power", "linear"]
Method = Literal["varpro", "huber_log"]
METHODS: tuple[str, ...] = ("varpro", "huber_log")
DEFAULT_METHOD: Method = "varpro"
PARAMS = ("E", "A", "B", "alpha", "beta", "psi", "gamma")
HUBER_DELTA = 1e-3
ROBUST_ROUNDS = 2
HUBER_K = 1.345  # Huber threshold in noise sds: 95% efficiency under Gaussian noise
GRID_REFINE = 4
REFIT_CHUNK = 400_000  # replicates x trials per batched refit
START_REFINE = 12
_EXP_GRID = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2])
_PSI_GRID = np.linspace(0.0, 1.0, 5)
_GAMMA_GRID = np.array([-0.2, 0.0, 0.2, 0.5])
_EXP_BOUNDS, _PSI_BOUNDS, _GAMMA_BOUNDS = (0.01, 3.0), (-1.0, 2.0), (-1.0, 1.0)


@dataclass(frozen=True)
class LawForm:
    chain: ChainForm = "none"
    sparsity: bool = False

    @property
    def name(self) -> str:
        parts = ([] if self.chain == "none" else [f"chain-{self.chain}"]) + (["sparsity"] if self.sparsity else [])
        return "+".join(parts) or "chinchilla"

    @property
    def free(self) -> list[str]:
        """The nonlinear parameters this form fits (E, A, B are always fitted)."""
        return ["alpha", "beta"] + (["psi"] if self.chain != "none" else []) + (["gamma"] if self.sparsity else [])


CHINCHILLA = LawForm()


def ln_multiplier(form: LawForm, psi: float | np.ndarray, gamma: float | np.ndarray, c: np.ndarray,
                  s: np.ndarray) -> np.ndarray:
    """ln(h(C; psi) * S^gamma): the log of N_eff / N."""
    out = np.zeros(np.broadcast_shapes(np.shape(psi), np.shape(c)))
    if form.chain == "power":
        out = out + (1.0 - psi) * np.log(c)
    elif form.chain == "linear":
        out = out + np.log(np.maximum(1.0 + (1.0 - psi) * (c - 1.0), 1e-12))
    if form.sparsity:
        out = out + gamma * np.log(s)
    return out


def _dln_h_dpsi(form: LawForm, psi: float | np.ndarray, c: np.ndarray) -> np.ndarray:
    out: np.ndarray
    if form.chain == "power":
        out = -np.log(c)
    elif form.chain == "linear":
        out = -(c - 1.0) / np.maximum(1.0 + (1.0 - psi) * (c - 1.0), 1e-12)
    else:
        out = np.zeros_like(c)
    return out


def predict(form: LawForm, theta: np.ndarray, n: np.ndarray, d: np.ndarray, c: np.ndarray | float = 1.0,
            s: np.ndarray | float = 1.0) -> np.ndarray:
    """L(N, D) for parameter rows theta (..., 7) in PARAMS order; broadcasts over trials."""
    th = np.asarray(theta, dtype=float)[..., None]
    c, s = np.broadcast_to(c, np.shape(n)), np.broadcast_to(s, np.shape(n))
    ln_neff = np.log(n) + ln_multiplier(form, th[..., 5, :], th[..., 6, :], c, s)
    with np.errstate(over="ignore"):
        loss: np.ndarray = th[..., 0, :] + th[..., 1, :] * np.exp(-th[..., 3, :] * ln_neff) + th[..., 2, :] * np.exp(
            -th[..., 4, :] * np.log(d))
    return loss


def _theta(form: LawForm, linear: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Full PARAMS vector from (E, A, B) and the form's free nonlinear parameters."""
    values = dict(zip(form.free, phi, strict=True))
    return np.array([*linear, values["alpha"], values["beta"], values.get("psi", 1.0), values.get("gamma", 0.0)])


def _bounds(form: LawForm, data: LawData) -> list[tuple[float, float]]:
    out = [_EXP_BOUNDS, _EXP_BOUNDS]
    if form.chain != "none":
        hi = _PSI_BOUNDS[1]
        if form.chain == "linear" and data.iterations.max() > 1:  # keep h > 0
            hi = min(hi, 1.0 + 1.0 / (data.iterations.max() - 1.0) - 1e-3)
        out.append((_PSI_BOUNDS[0], hi))
    if form.sparsity:
        out.append(_GAMMA_BOUNDS)
    return out


# --- variable projection ----------------------------------------------------------------------
def _profile(form: LawForm, phi: np.ndarray, data: LawData, sw: np.ndarray) -> tuple[float, np.ndarray]:
    """min over (E, A, B) >= 0 of sum w (model - loss)^2 at nonlinear phi; returns (sse, [E, A, B])."""
    th = _theta(form, np.zeros(3), phi)
    ln_neff = np.log(data.n) + ln_multiplier(form, th[5], th[6], data.iterations, data.sparsity)
    X = np.column_stack([np.ones_like(data.n), np.exp(-th[3] * ln_neff), np.exp(-th[4] * np.log(data.d))])
    scale = np.maximum(np.abs(X).max(axis=0), 1e-300)
    coef, residual = nnls((X / scale) * sw[:, None], data.loss * sw, maxiter=200)
    return float(residual**2), coef / scale


def _grid_starts(form: LawForm, data: LawData, w: np.ndarray) -> list[np.ndarray]:
    """The GRID_REFINE best grid points of phi by closed-form (unconstrained, sign-checked) least squares."""
    psis = _PSI_GRID if form.chain != "none" else np.array([1.0])
    gammas = _GAMMA_GRID if form.sparsity else np.array([0.0])
    combos = np.array(list(itertools.product(_EXP_GRID, psis, gammas)))  # (Gp, 3): alpha, psi, gamma
    ln_neff = np.log(data.n)[None] + ln_multiplier(form, combos[:, 1:2], combos[:, 2:3],
                                                   data.iterations[None], data.sparsity[None])
    P = np.exp(-combos[:, :1] * ln_neff)
    Q = np.exp(-_EXP_GRID[:, None] * np.log(data.d)[None])
    P /= P.max(axis=1, keepdims=True)
    Q /= Q.max(axis=1, keepdims=True)
    y, wy = data.loss, w * data.loss
    gp, gq = P.shape[0], Q.shape[0]
    M = np.empty((gp, gq, 3, 3))
    M[..., 0, 0] = w.sum()
    M[..., 0, 1] = M[..., 1, 0] = (P @ w)[:, None]
    M[..., 0, 2] = M[..., 2, 0] = (Q @ w)[None, :]
    M[..., 1, 1] = ((P * P) @ w)[:, None]
    M[..., 2, 2] = ((Q * Q) @ w)[None, :]
    M[..., 1, 2] = M[..., 2, 1] = (P * w) @ Q.T
    r = np.stack(np.broadcast_arrays(wy.sum(), (P @ wy)[:, None], (Q @ wy)[None, :]), axis=-1)
    with np.errstate(all="ignore"):
        coef = np.linalg.solve(M + 1e-12 * np.eye(3), r[..., None])[..., 0]
        sse = (w * y * y).sum() - 2 * (coef * r).sum(-1) + np.einsum("...i,...ij,...j->...", coef, M, coef)
    sse = np.where((coef >= 0).all(-1) & np.isfinite(sse), sse, np.inf)
    order = np.argsort(sse, axis=None)[:GRID_REFINE]
    starts = []
    for flat in order:
        i, j = np.unravel_index(flat, sse.shape)
        alpha, psi, gamma = combos[i]
        values = {"alpha": alpha, "beta": _EXP_GRID[j], "psi": psi, "gamma": gamma}
        starts.append(np.array([values[k] for k in form.free]))
    return starts or [np.array([0.3, 0.3, 0.5, 0.0][: len(form.free)])]


def fit_varpro(form: LawForm, data: LawData, w: np.ndarray | None = None,
               starts: list[np.ndarray] | None = None) -> tuple[np.ndarray, float]:
    """(theta, weighted sse) by variable projection (see the module docstring)."""
    w = np.ones(len(data)) if w is None else w
    sw = np.sqrt(w)
    bounds = _bounds(form, data)
    best: tuple[float, np.ndarray] | None = None
    for x0 in starts if starts is not None else _grid_starts(form, data, w):
        x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore", (RuntimeWarning, OptimizeWarning))
            res = minimize(lambda phi: _profile(form, phi, data, sw)[0], x0, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 300, "ftol": 1e-13, "gtol": 1e-10})
        if best is None or res.fun < best[0]:
            best = (float(res.fun), res.x)
    assert best is not None
    sse, coef = _profile(form, best[1], data, sw)
    return _theta(form, coef, best[1]), sse


# --- Huber on log-loss (Approach 3 as published) --------------------------------------------------
def _huber_objective(p: np.ndarray, form: LawForm, data: LawData, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Sum w Huber(LSE(a - alpha ln N_eff, b - beta ln D, e) - ln L) and its gradient in p."""
    values = dict(zip(["e", "a", "b", *form.free], p, strict=True))
    psi, gamma = values.get("psi", 1.0), values.get("gamma", 0.0)
    ln_neff = np.log(data.n) + ln_multiplier(form, psi, gamma, data.iterations, data.sparsity)
    ln_d = np.log(data.d)
    u = np.stack([values["a"] - values["alpha"] * ln_neff, values["b"] - values["beta"] * ln_d,
                  np.full_like(ln_d, values["e"])])
    top = u.max(axis=0)
    ex = np.exp(u - top)
    total = ex.sum(axis=0)
    r = top + np.log(total) - np.log(data.loss)
    absr = np.abs(r)
    obj = float((w * np.where(absr <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (absr - 0.5 * HUBER_DELTA))).sum())
    g = w * np.clip(r, -HUBER_DELTA, HUBER_DELTA)
    s1, s2, s3 = ex / total
    grads = {"e": (g * s3).sum(), "a": (g * s1).sum(), "b": (g * s2).sum(),
             "alpha": -(g * s1 * ln_neff).sum(), "beta": -(g * s2 * ln_d).sum()}
    if "psi" in values:
        grads["psi"] = -(g * s1 * values["alpha"] * _dln_h_dpsi(form, psi, data.iterations)).sum()
    if "gamma" in values:
        grads["gamma"] = -(g * s1 * values["alpha"] * np.log(data.sparsity)).sum()
    return obj, np.array([grads[k] for k in ["e", "a", "b", *form.free]])


def _huber_starts(form: LawForm, data: LawData, w: np.ndarray) -> list[np.ndarray]:
    """Hoffmann's grid of starts (alpha, beta 0..2 by 0.5; e -1..1 by 0.5; a, b 0..25 by 5), screened."""
    grid = np.array(list(itertools.product(np.arange(-1.0, 1.01, 0.5), np.arange(0, 26, 5.0), np.arange(0, 26, 5.0),
                                           np.arange(0, 2.01, 0.5), np.arange(0, 2.01, 0.5))))
    extra = ([0.5] if form.chain != "none" else []) + ([0.0] if form.sparsity else [])
    ln_neff = np.log(data.n)[None]
    u1 = grid[:, 1:2] - grid[:, 3:4] * ln_neff
    u2 = grid[:, 2:3] - grid[:, 4:5] * np.log(data.d)[None]
    lse = np.logaddexp(np.logaddexp(u1, u2), grid[:, 0:1])
    r = np.abs(lse - np.log(data.loss)[None])
    obj = (w[None] * np.where(r <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (r - 0.5 * HUBER_DELTA))).sum(axis=1)
    # the best (e, a, b) of every (alpha, beta) cell, then the START_REFINE best cells: diverse exponents,
    # so that the refinements do not all start in one basin
    cells: dict[tuple[float, float], int] = {}
    for i in np.argsort(obj):
        cells.setdefault((grid[i, 3], grid[i, 4]), int(i))
    return [np.concatenate([grid[i], extra]) for i in list(cells.values())[:START_REFINE]]


def fit_huber_log(form: LawForm, data: LawData, w: np.ndarray | None = None,
                  starts: list[np.ndarray] | None = None) -> tuple[np.ndarray, float]:
    """(theta, objective) by Huber on log-loss, L-BFGS-B from a screened grid of starts."""
    w = np.ones(len(data)) if w is None else w
    bounds = [(-5.0, 5.0), (-30.0, 60.0), (-30.0, 60.0), *_bounds(form, data)]
    best: tuple[float, np.ndarray] | None = None
    for x0 in starts if starts is not None else _huber_starts(form, data, w):
        x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore", RuntimeWarning)
            res = minimize(_huber_objective, x0, args=(form, data, w), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-9})
        if best is None or res.fun < best[0]:
            best = (float(res.fun), res.x)
    assert best is not None
    p = best[1]
    return _theta(form, np.exp(p[:3]), p[3:]), best[0]


def fit(form: LawForm, data: LawData, method: Method, w: np.ndarray | None = None,
        start: np.ndarray | None = None) -> np.ndarray:
    """Point fit (theta) by `method`; `start` (a theta) refits from there only (bootstrap replicates)."""
    if method == "varpro":
        starts = None if start is None else [np.array([start[PARAMS.index(k)] for k in form.free])]
        theta = fit_varpro(form, data, w, starts)[0]
        weights = (np.ones(len(data)) if w is None else w)[None]
        for _ in range(ROBUST_ROUNDS):  # Huber polish; the threshold follows the residuals' MAD scale
            theta = refit_batch(form, data, theta, weights, f_scale=robust_scale_of(form, data, theta),
                                iterations=60)[0]
        return theta
    if method == "huber_log":
        starts = None if start is None else [np.concatenate(
            [np.log(np.maximum(start[:3], 1e-12)), [start[PARAMS.index(k)] for k in form.free]])]
        return fit_huber_log(form, data, w, starts)[0]
    raise ValueError(f"method={method!r} is invalid: expected one of {', '.join(METHODS)}")


def group_weights(group: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, trials) bootstrap weights: config groups drawn with replacement, all their seeds taken."""
    _, inverse = np.unique(group, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if inverse.size else 0
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    counts = np.stack([np.bincount(row, minlength=n_groups) for row in draws]) if n_boot else np.empty((0, n_groups))
    return counts[:, inverse].astype(float)


def _model_and_jacobian(form: LawForm, q: np.ndarray, data: LawData,
                        free: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Batched model (R, n) and Jacobian (R, n, len(free)) in q = [E, ln A, ln B, alpha, beta, psi, gamma]."""
    E, lnA, lnB, alpha, beta, psi, gamma = (q[:, i:i + 1] for i in range(len(PARAMS)))
    ln_neff = np.log(data.n)[None] + ln_multiplier(form, psi, gamma, data.iterations[None], data.sparsity[None])
    ln_d = np.log(data.d)[None]
    with np.errstate(over="ignore", invalid="ignore"):
        t1, t2 = np.exp(lnA - alpha * ln_neff), np.exp(lnB - beta * ln_d)
    columns: dict[int, Callable[[], np.ndarray | float]] = {0: lambda: 1.0, 1: lambda: t1, 2: lambda: t2, 3: lambda: -ln_neff * t1, 4: lambda: -ln_d * t2,
               5: lambda: -alpha * _dln_h_dpsi(form, psi, data.iterations[None]) * t1,
               6: lambda: -alpha * np.log(data.sparsity)[None] * t1}
    jac = np.empty((*t1.shape, len(free)))
    for j, i in enumerate(free):
        jac[..., j] = columns[i]()
    return E + t1 + t2, jac


def _huber_rho(z: np.ndarray) -> np.ndarray:
    return np.where(z <= 1.0, z, 2.0 * np.sqrt(np.maximum(z, 1.0)) - 1.0)


def _objective(form: LawForm, q: np.ndarray, data: LawData, free: list[int], weights: np.ndarray,
               f_scale: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(objective (R,), IRLS weights (R, n), residuals (R, n), Jacobian) at q for each weighting."""
    model, jac = _model_and_jacobian(form, q, data, free)
    resid = model - data.loss
    if f_scale is None:
        value, irls = (weights * resid**2).sum(1), weights
    else:
        z = (resid / f_scale) ** 2
        value = (weights * _huber_rho(z)).sum(1) * f_scale**2
        irls = weights * np.where(z <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(z, 1.0)))
    return np.where(np.isfinite(value), value, np.inf), irls, resid, jac


def refit_batch(form: LawForm, data: LawData, theta: np.ndarray, weights: np.ndarray, *,
                f_scale: float | None = None, iterations: int = 60, rtol: float = 1e-12) -> np.ndarray:
    """Refits of many weightings at once by Levenberg-Marquardt from theta, batched over the rows of
    `weights`; returns (R, 7) thetas. Objective: weighted least squares in loss, or with `f_scale` the
    Huber M-estimate sum w rho((r / f_scale)^2) (IRLS weights rho' at each step). A row stops once an
    accepted step improves its objective by less than rtol (relative) or its damping saturates."""
    free = [0, 1, 2] + [PARAMS.index(k) for k in form.free]
    lo = np.array([0.0, -np.inf, -np.inf, *[b[0] for b in _bounds(form, data)]])
    hi = np.array([np.inf, np.inf, np.inf, *[b[1] for b in _bounds(form, data)]])
    # A and B are fitted in log space; a point fit that put a term at 0 starts from a tiny positive value
    log_a, log_b = np.log(np.maximum(theta[1:3], 1e-12))
    q = np.repeat(np.array([theta[0], log_a, log_b, *theta[3:]])[None], len(weights), axis=0)
    lam = np.full(len(weights), 1e-3)
    current, irls, resid, jac = _objective(form, q, data, free, weights, f_scale)
    active = np.arange(len(weights))
    for _ in range(iterations):
        if active.size == 0:
            break
        jw = (jac[active] * irls[active][..., None]).transpose(0, 2, 1)
        jtj = jw @ jac[active]
        grad = (jw @ resid[active][..., None])[..., 0]
        eye = np.eye(len(free))
        # Marquardt damping of the diagonal, plus a tiny ridge so that a parameter the data do not move
        # (a zero Jacobian column: e.g. A -> 0) leaves the system solvable instead of singular
        damped = jtj + lam[active, None, None] * (np.einsum("rii->ri", jtj)[:, :, None] * eye) + 1e-12 * eye
        with np.errstate(all="ignore"):
            step = np.linalg.solve(damped, -grad[..., None])[..., 0]
        trial = q[active].copy()
        trial[:, free] = np.clip(trial[:, free] + np.nan_to_num(step), lo, hi)
        new, new_irls, new_resid, new_jac = _objective(form, trial, data, free, weights[active], f_scale)
        better = new < current[active]
        gain = (current[active] - new) / np.maximum(np.abs(current[active]), 1e-300)
        rows = active[better]
        q[rows], current[rows], irls[rows] = trial[better], new[better], new_irls[better]
        resid[rows], jac[rows] = new_resid[better], new_jac[better]
        lam[active] = np.where(better, lam[active] / 3.0, lam[active] * 4.0)
        done = (better & (gain < rtol)) | (lam[active] > 1e10)
        active = active[~done]
    out = q.copy()
    out[:, 1], out[:, 2] = np.exp(q[:, 1]), np.exp(q[:, 2])
    return out


def robust_scale_of(form: LawForm, data: LawData, theta: np.ndarray) -> float:
    """HUBER_K times the MAD noise scale of the residuals at theta (the Huber threshold in loss units)."""
    resid = data.loss - predict(form, theta, data.n, data.d, data.iterations, data.sparsity)
    floor = 1e-6 * max(float(np.median(data.loss)), 1.0)
    return HUBER_K * robust_scale(resid, 3 + len(form.free), floor)


def refit(form: LawForm, data: LawData, theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The varpro objective (Huber in loss at the point fit's threshold) refitted for many weightings
    at once from theta: bootstrap replicates, cross-validation folds, drop-one refits."""
    f_scale = robust_scale_of(form, data, theta)
    rows = max(1, REFIT_CHUNK // max(len(data), 1))  # bounds the (rows, trials, 7) Jacobian in memory
    chunks = [refit_batch(form, data, theta, weights[i:i + rows], f_scale=f_scale) for i in range(0, len(weights), rows)]
    return np.concatenate(chunks) if chunks else np.empty((0, len(PARAMS)))


def bootstrap(form: LawForm, data: LawData, method: Method, theta: np.ndarray, n_boot: int,
              seed: int) -> np.ndarray:
    """(n_boot, 7) refits on group-resampled weights, each from the point fit (varpro: batched
    Levenberg-Marquardt on the same objective, `refit`; huber_log: L-BFGS-B per replicate)."""
    weights = group_weights(data.group, n_boot, np.random.default_rng(seed))
    if method == "varpro":
        return refit(form, data, theta, weights)
    out = np.full((n_boot, len(PARAMS)), np.nan)
    for b, w in enumerate(weights):
        keep = w > 0
        try:
            out[b] = fit(form, data.subset(keep), method, w[keep], start=theta)
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            continue
    return out
