"""IsoFLOP profiles: per budget level, val loss against x with a robust parabola in log x.

Chinchilla Approach 2 (Hoffmann et al. 2022, section 3.2): at a fixed training budget, loss is
fitted as a quadratic in log x (x = active params by default; total params, tokens or chain
iterations also accepted) and the vertex is the compute-optimal x at that budget.

- Fit: loss = a t^2 + b t + c, t = (ln x - m) / s (m, s: mean and std of ln x, for conditioning),
  by a robust M-estimator (soft_l1 by default, scale = MAD of residuals; see `robust.py`), so one
  diverged-but-finite trial does not move the vertex. Reported coefficients are converted to
  loss = A L^2 + B L + C with L = ln x.
- Vertex: ln x* = m - s b / (2a), loss* = c - b^2 / (4a); only when a > 0 (convex).
- Interval: nonparametric bootstrap over the budget's points (resample rows with replacement,
  `n_boot` times, seed from (seed, budget label) so adding a budget never changes another's CI);
  each resample is refitted with the same robust loss and scale; percentile CI of ln x* and loss*
  over the convex refits, and the fraction of refits that were convex.
- Warnings (Approach 2 is biased when the parabola is not bracketed): see `IsoFlopWarning`.
- tokens*: tokens at the vertex, from a within-budget least-squares line of ln tokens on ln x
  (exact when tokens = C / flops_per_token and flops_per_token is a power of x); the scaling law
  of optimal tokens is fitted to these.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.analysis.configs import parse_param
from coe_sweep.analysis.robust import RobustLoss, check_loss, fit_robust, irls

log = logging.getLogger(__name__)

MIN_POINTS = 4
MIN_DISTINCT_X = 3
MIN_CONVEX_FRACTION = 0.9
CURVE_POINTS = 64
BOOT_TOL = 1e-8  # IRLS stop for bootstrap refits: far below the spread of the draws
POINT_COLUMNS = (C.RUN_ID, C.TRIAL_ID, C.CONFIG_HASH, C.FAMILY, C.TOKENS, C.PARAMS_ACTIVE, C.PARAMS_TOTAL,
                 C.ITERATIONS, C.TOP_K, C.N_EXPERTS, C.N_LAYERS, C.PEAK_MEMORY_BYTES)


class IsoFlopWarning(str, Enum):
    TOO_FEW_POINTS = "too_few_points"  # < 4 points or < 3 distinct x (no fit below 3 distinct x)
    NOT_CONVEX = "not_convex"  # fitted parabola opens downwards: no vertex
    EDGE_OF_RANGE = "edge_of_range"  # vertex outside the sampled x range, or best point at its edge
    LOPSIDED = "lopsided"  # fewer than min_side_points distinct x on one side of the vertex
    BOOTSTRAP_UNSTABLE = "bootstrap_unstable"  # < 90% of bootstrap refits convex


@dataclass
class IsoFlopProfile:
    budget_label: str
    budget_flops: float
    x_name: str  # the column used as x
    n_points: int
    n_distinct_x: int
    n_excluded_nan: int  # rows of this budget dropped for NaN/inf loss or non-positive/NaN x
    x_min: float
    x_max: float
    best_x: float  # the lowest observed loss and its x
    best_loss: float
    best_run_id: str | None
    coef: tuple[float, float, float] | None  # (A, B, C): loss = A ln(x)^2 + B ln(x) + C
    convex: bool
    x_opt: float | None
    loss_opt: float | None
    tokens_opt: float | None
    x_opt_ci: tuple[float, float] | None
    loss_opt_ci: tuple[float, float] | None
    tokens_opt_ci: tuple[float, float] | None
    ci: float
    n_boot: int
    n_boot_valid: int  # resamples whose fit was defined (>= 3 distinct x)
    boot_convex_fraction: float | None  # convex refits / valid refits
    robust_loss: str
    robust_scale: float | None
    warnings: list[IsoFlopWarning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one human sentence per warning
    points: list[dict[str, Any]] = field(default_factory=list)
    curve_x: list[float] = field(default_factory=list)
    curve_loss: list[float] = field(default_factory=list)
    # bootstrap draws of the vertex over convex refits (ln x*, loss*, ln tokens*), for scaling fits
    boot_log_x_opt: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    boot_loss_opt: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    boot_log_tokens_opt: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def ok(self) -> bool:
        """A vertex exists (convex fit)."""
        return self.convex and self.x_opt is not None

    def to_dict(self) -> dict[str, Any]:
        skip = {"boot_log_x_opt", "boot_loss_opt", "boot_log_tokens_opt"}
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        return C.jsonable(out)  # type: ignore[return-value]


def _tokens_map(log_x: np.ndarray, tokens: np.ndarray) -> tuple[float, float] | None:
    """(alpha, beta) of ln tokens = alpha + beta ln x within a budget; None when undetermined."""
    ok = np.isfinite(tokens) & (tokens > 0)
    if ok.sum() < 2 or np.ptp(log_x[ok]) == 0:
        return None
    beta, alpha = np.polyfit(log_x[ok], np.log(tokens[ok]), 1)
    return float(alpha), float(beta)


def _percentile_ci(values: np.ndarray, ci: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    lo, hi = np.percentile(values, [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


def _vertex(beta_BP: np.ndarray, m: float, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(convex_B, ln x*_B, loss*_B) from coefficients in t = (ln x - m) / s."""
    a, b, c = beta_BP[:, 0], beta_BP[:, 1], beta_BP[:, 2]
    convex = np.isfinite(a) & (a > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_opt = np.where(convex, -b / (2 * a), np.nan)
        loss_opt = np.where(convex, c - b * b / (4 * a), np.nan)
    return convex, m + s * t_opt, loss_opt


def _points(rows: pd.DataFrame, x: np.ndarray, loss: np.ndarray) -> list[dict[str, Any]]:
    cols = [c for c in POINT_COLUMNS if c in rows.columns]
    points = []
    for i, record in enumerate(rows[cols].to_dict(orient="records")):
        record = {k: C.jsonable(parse_param(v) if k.startswith(C.PARAM_PREFIXES) else v) for k, v in record.items()}
        record.update(x=float(x[i]), loss=float(loss[i]))
        points.append(record)
    return points


def fit_profile(label: str, budget_flops: float, rows: pd.DataFrame, *, x: str = C.PARAMS_ACTIVE,
                loss: str = C.FINAL_VAL_LOSS, n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
                robust_loss: RobustLoss = "soft_l1", min_side_points: int = 2) -> IsoFlopProfile:
    """One budget's profile from its usable rows (callers pass status-ok rows)."""
    x_all, loss_all = C.numeric(rows, x), C.numeric(rows, loss)
    keep = np.isfinite(x_all) & (x_all > 0) & np.isfinite(loss_all)
    rows, xs, ys = rows[keep], x_all[keep], loss_all[keep]
    n_excluded = int((~keep).sum())
    if n_excluded:
        log.info("budget %s: %d row(s) excluded for NaN/inf loss or non-positive x", label, n_excluded)
    tokens = C.numeric(rows, C.TOKENS)
    log_x = np.log(xs)
    distinct = np.unique(xs)
    best = int(np.argmin(ys)) if ys.size else -1
    profile = IsoFlopProfile(
        budget_label=label, budget_flops=budget_flops, x_name=x, n_points=int(xs.size),
        n_distinct_x=int(distinct.size), n_excluded_nan=n_excluded,
        x_min=float(xs.min()) if xs.size else float("nan"), x_max=float(xs.max()) if xs.size else float("nan"),
        best_x=float(xs[best]) if best >= 0 else float("nan"),
        best_loss=float(ys[best]) if best >= 0 else float("nan"),
        best_run_id=str(rows[C.RUN_ID].iloc[best]) if best >= 0 and C.RUN_ID in rows.columns else None,
        coef=None, convex=False, x_opt=None, loss_opt=None, tokens_opt=None, x_opt_ci=None,
        loss_opt_ci=None, tokens_opt_ci=None, ci=ci, n_boot=n_boot, n_boot_valid=0,
        boot_convex_fraction=None, robust_loss=robust_loss, robust_scale=None,
        points=_points(rows, xs, ys))

    def warn(kind: IsoFlopWarning, note: str) -> None:
        profile.warnings.append(kind)
        profile.notes.append(note)

    if xs.size < MIN_POINTS or distinct.size < MIN_DISTINCT_X:
        warn(IsoFlopWarning.TOO_FEW_POINTS, f"{xs.size} point(s) at {distinct.size} distinct x; "
             f"a parabola needs >= {MIN_POINTS} points at >= {MIN_DISTINCT_X} distinct x")
        if distinct.size < MIN_DISTINCT_X:
            return profile

    m, s = float(log_x.mean()), float(log_x.std()) or 1.0
    t = (log_x - m) / s
    A_NP = np.stack([t * t, t, np.ones_like(t)], axis=1)
    beta_P, scale = fit_robust(A_NP, ys, loss=robust_loss)
    a, b, c = (float(v) for v in beta_P)
    profile.robust_scale = scale
    profile.coef = (a / s**2, b / s - 2 * a * m / s**2, a * m * m / s**2 - b * m / s + c)
    convex, log_x_opt, loss_opt = (v[0] for v in _vertex(beta_P[None], m, s))
    tokens_map = (0.0, 1.0) if x == C.TOKENS else _tokens_map(log_x, tokens)

    # Bootstrap: a resample is a weighting by draw counts; refit all resamples at once.
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    n = xs.size
    idx_BN = rng.integers(0, n, size=(n_boot, n))
    w_BN = np.bincount((idx_BN + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    w_BN = w_BN.reshape(n_boot, n).astype(float)
    boot_BP = irls(A_NP, ys, w_BN, loss=robust_loss, f_scale=scale, tol=BOOT_TOL,
                   beta0_BP=np.repeat(beta_P[None], n_boot, axis=0))
    valid = np.isfinite(boot_BP).all(axis=1)
    boot_convex, boot_log_x, boot_loss = _vertex(boot_BP[valid], m, s)
    profile.n_boot_valid = int(valid.sum())
    profile.boot_convex_fraction = float(boot_convex.mean()) if valid.any() else None
    profile.boot_log_x_opt, profile.boot_loss_opt = boot_log_x[boot_convex], boot_loss[boot_convex]
    if tokens_map is not None:
        profile.boot_log_tokens_opt = tokens_map[0] + tokens_map[1] * profile.boot_log_x_opt

    grid_lo, grid_hi = float(log_x.min()), float(log_x.max())
    if convex:
        profile.convex = True
        profile.x_opt, profile.loss_opt = float(np.exp(log_x_opt)), float(loss_opt)
        if tokens_map is not None:
            profile.tokens_opt = float(np.exp(tokens_map[0] + tokens_map[1] * log_x_opt))
        x_ci = _percentile_ci(profile.boot_log_x_opt, ci)
        profile.x_opt_ci = None if x_ci is None else (float(np.exp(x_ci[0])), float(np.exp(x_ci[1])))
        profile.loss_opt_ci = _percentile_ci(profile.boot_loss_opt, ci)
        tok_ci = _percentile_ci(profile.boot_log_tokens_opt, ci)
        profile.tokens_opt_ci = None if tok_ci is None else (float(np.exp(tok_ci[0])), float(np.exp(tok_ci[1])))
        span = max(grid_hi - grid_lo, 1e-12)
        grid_lo = min(grid_lo, max(log_x_opt, grid_lo - 0.5 * span))
        grid_hi = max(grid_hi, min(log_x_opt, grid_hi + 0.5 * span))
        _check_bracketing(profile, warn, log_x, log_x_opt, distinct, min_side_points)
    else:
        warn(IsoFlopWarning.NOT_CONVEX, f"the fitted parabola opens downwards (A={profile.coef[0]:.3g}): no vertex")
    if profile.boot_convex_fraction is not None and profile.boot_convex_fraction < MIN_CONVEX_FRACTION:
        warn(IsoFlopWarning.BOOTSTRAP_UNSTABLE, f"only {profile.boot_convex_fraction:.0%} of bootstrap "
             f"refits are convex (< {MIN_CONVEX_FRACTION:.0%})")
    grid = np.linspace(grid_lo, grid_hi, CURVE_POINTS)
    profile.curve_x = np.exp(grid).tolist()
    profile.curve_loss = np.polyval(profile.coef, grid).tolist()
    return profile


def _check_bracketing(profile: IsoFlopProfile, warn: Any, log_x: np.ndarray, log_x_opt: float,
                      distinct: np.ndarray, min_side_points: int) -> None:
    x_opt = float(np.exp(log_x_opt))
    outside = x_opt < profile.x_min or x_opt > profile.x_max
    best_at_edge = profile.best_x in (distinct[0], distinct[-1])
    if outside or best_at_edge:
        where = "outside" if outside else "inside"
        warn(IsoFlopWarning.EDGE_OF_RANGE,
             f"vertex x*={x_opt:.4g} lies {where} the sampled range [{profile.x_min:.4g}, {profile.x_max:.4g}]"
             f"{'' if not best_at_edge else f' and the best point (x={profile.best_x:.4g}) is at its edge'}")
    below, above = int((distinct < x_opt).sum()), int((distinct > x_opt).sum())
    if min(below, above) < min_side_points:
        warn(IsoFlopWarning.LOPSIDED, f"{below} distinct x below and {above} above the vertex "
             f"(want >= {min_side_points} each side)")


def isoflop_profiles(df: pd.DataFrame, x: str = "params_active", *, loss: str = C.FINAL_VAL_LOSS,
                     families: tuple[str, ...] | list[str] | None = None, n_boot: int = 1000,
                     seed: int = 0, ci: float = 0.95, robust_loss: str = "soft_l1",
                     min_side_points: int = 2) -> list[IsoFlopProfile]:
    """One profile per budget level (ascending FLOPs) over status-ok rows.

    x: a short name or column (`columns.X_AXES`); families: keep only these (moe|coe|dense).
    """
    x_col = C.resolve_x(x)
    check_loss(robust_loss)
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci!r} is invalid: expected a level strictly between 0 and 1, e.g. 0.95")
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r} is invalid: expected an integer >= 1")
    if min_side_points < 1:
        raise ValueError(f"min_side_points={min_side_points!r} is invalid: expected an integer >= 1")
    C.require_columns(df, [loss], "isoflop_profiles")
    rows = C.ok_rows(df)
    if families is not None:
        unknown = sorted(set(families) - set(C.FAMILIES))
        if unknown:
            raise ValueError(f"families={unknown} is invalid: expected a subset of {list(C.FAMILIES)}")
        rows = rows[C.families(rows).isin(list(families))]
    if rows.empty:
        return []
    return [fit_profile(label, flops, group, x=x_col, loss=loss, n_boot=n_boot, seed=seed, ci=ci,
                        robust_loss=robust_loss, min_side_points=min_side_points)  # type: ignore[arg-type]
            for label, flops, group in C.budget_groups(rows)]
