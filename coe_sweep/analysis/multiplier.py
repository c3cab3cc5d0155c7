"""Compute multipliers: how much training compute the baseline arm needs to reach an arm's loss.

Frontier of an arm (needs >= 3 budget levels): at each level its best config (lowest mean over seeds),
its seeds' losses against the level's training FLOPs C, fitted as

    L(C) = E + k * (C / C_ref)**-beta        E >= 0 (irreducible), k > 0, beta in BETA_GRID

by variable projection: for each beta of a log grid, E and k are a weighted linear least squares
(weights: seeds per level); the best grid point is refined on a finer grid and a parabola in log beta. When the
unconstrained floor would be negative the data do not support one and E sits at 0 (a pure power law);
the frontier says so. With exactly 3 levels the three parameters pass through the level means.

Multiplier at the arm's level C: the baseline's compute to reach the arm's fitted loss, over C,

    C_base = C_ref * ((L_arm(C) - E_base) / k_base)**(-1 / beta_base),   multiplier = C_base / C

(> 1: the arm saves compute). Infinite when L_arm(C) <= E_base: the baseline's fitted frontier never gets
there. A C_base outside the baseline's swept levels is an extrapolation and carries a warning.

Interval: a residual bootstrap over seeds and trials. Each arm's seed residuals (loss minus its config's
mean over seeds, scaled by sqrt(n / (n - 1)) so their spread estimates the seed noise) are pooled across
its configs and levels, resampled with replacement onto every config, the best config per level is
chosen again (the selection is part of the estimate), both frontiers are refitted and the multiplier
recomputed; the interval is the percentile interval of log multiplier. Residuals are widened by
t_{dof}(q) / z(q) (dof: the pooled residuals' degrees of freedom), the small-sample expansion of the
percentile bootstrap (Hesterberg 2015, "What teachers should know about the bootstrap", sec. 4.4), so
that the interval accounts for the noise level itself being estimated from few seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from coe_sweep.analysis.arms import Cell

BETA_GRID = np.geomspace(0.01, 8.0, 240)
FINE_POINTS = 25
N_BOOT = 1000
LEVEL = 0.95
MIN_BUDGETS = 3
CURVE_POINTS = 40


@dataclass(frozen=True)
class FrontierFit:
    """Batch of fits (one row per bootstrap draw, or a single row): L = E + k (C / c_ref)^-beta."""

    E: np.ndarray
    k: np.ndarray
    beta: np.ndarray
    c_ref: float

    def loss(self, flops: np.ndarray | float) -> np.ndarray:
        """Fitted loss: (B,) at one compute, (B, L) at L of them."""
        flops = np.asarray(flops, dtype=float)
        if flops.ndim == 0:
            out: np.ndarray = self.E + self.k * (flops / self.c_ref) ** -self.beta
            return out
        out = self.E[:, None] + self.k[:, None] * (flops[None, :] / self.c_ref) ** -self.beta[:, None]
        return out

    def flops_for(self, loss: np.ndarray | float) -> np.ndarray:
        """(B,) compute at which each fit reaches `loss` (one value, or one per fit); inf at or below E."""
        gap = np.asarray(loss, dtype=float) - self.E
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.c_ref * (np.maximum(gap, 0.0) / self.k) ** (-1.0 / self.beta)
        return np.where(gap > 0, out, np.inf)


def _weighted_ls(w: float, sz: np.ndarray, szz: np.ndarray, sy: np.ndarray, syy: np.ndarray,
                 szy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E, k, SSE) of y ~ E + k z under E >= 0 and k > 0, from weighted moments (sz = sum w z, szz = sum
    w z^2, szy = sum w z y ...; they broadcast: a (1, G) grid against (B, 1) rows gives (B, G)).
    SSE is inf where k <= 0 (the loss does not fall with compute)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cov_zy, var_z = szy - sz * sy / w, szz - sz * sz / w
        k = cov_zy / var_z
        e = (sy - k * sz) / w
        sse = syy - sy * sy / w - k * cov_zy
        k0 = szy / szz  # a negative floor: refit with E = 0 (y ~ k z through the origin)
        sse0 = syy - k0 * szy
    floor = e < 0
    k, e, sse = np.where(floor, k0, k), np.where(floor, 0.0, e), np.where(floor, sse0, sse)
    return e, k, np.where(k > 0, np.maximum(sse, 0.0), np.inf)


def _fit_at(log_beta_BK: np.ndarray, x_N: np.ndarray, y_BN: np.ndarray, w_N: np.ndarray) -> tuple[np.ndarray, ...]:
    """(E, k, SSE) per row b and exponent k of log_beta_BK ((1, K) shares one grid across rows)."""
    z = np.exp(-np.exp(log_beta_BK)[..., None] * x_N) * w_N  # (B|1, K, N), weighted
    wy_BN = y_BN * w_N
    return _weighted_ls(float(w_N.sum()), z.sum(-1), (z * z / w_N).sum(-1), wy_BN.sum(-1)[:, None],
                        (wy_BN * y_BN).sum(-1)[:, None], (z * y_BN[:, None, :]).sum(-1))


def _parabola_step(sse_BK: np.ndarray, best_B: np.ndarray) -> np.ndarray:
    """Offset (in grid steps, within +-1) of the minimum of a parabola through the best point's neighbours."""
    rows = np.arange(len(best_B))
    inner = np.clip(best_B, 1, sse_BK.shape[1] - 2)
    s0, s1, s2 = sse_BK[rows, inner - 1], sse_BK[rows, inner], sse_BK[rows, inner + 1]
    curvature = s0 - 2 * s1 + s2
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.where(np.isfinite(curvature) & (curvature > 0), 0.5 * (s0 - s2) / curvature, 0.0)
    return np.where(best_B == inner, np.clip(step, -1.0, 1.0), 0.0)


def fit_frontiers(flops_N: np.ndarray, y_BN: np.ndarray, w_N: np.ndarray) -> FrontierFit:
    """Fit every row of y_BN (losses at flops_N, weights w_N) by variable projection (module docstring):
    the shared log-beta grid, then a fine grid over +-1 coarse step around each row's best, then a parabola."""
    c_ref = float(np.exp(np.mean(np.log(flops_N))))
    x_N = np.log(flops_N / c_ref)
    coarse = np.log(BETA_GRID)
    _, _, sse_BG = _fit_at(coarse[None, :], x_N, y_BN, w_N)
    best_B = np.argmin(sse_BG, axis=1)
    rows = np.arange(len(best_B))
    fine_K = np.linspace(-1.0, 1.0, FINE_POINTS) * (coarse[1] - coarse[0])
    log_beta_BK = np.clip(coarse[best_B][:, None] + fine_K[None, :], coarse[0], coarse[-1])
    _, _, sse_BK = _fit_at(log_beta_BK, x_N, y_BN, w_N)
    fine_best = np.argmin(sse_BK, axis=1)
    log_beta_B = log_beta_BK[rows, fine_best] + _parabola_step(sse_BK, fine_best) * (fine_K[1] - fine_K[0])
    e_B, k_B, sse_B = (v[:, 0] for v in _fit_at(log_beta_B[:, None], x_N, y_BN, w_N))
    drop_B = k_B * (np.exp(-np.exp(log_beta_B) * x_N.min()) - np.exp(-np.exp(log_beta_B) * x_N.max()))
    flat = ~(drop_B > 1e-9 * np.abs(y_BN).mean(axis=1))  # no fall over the swept levels (k ~ 0 from rounding)
    bad = ~np.isfinite(sse_BG[rows, best_B]) | ~np.isfinite(sse_B) | flat
    return FrontierFit(E=np.where(bad, np.nan, e_B), k=np.where(bad, np.nan, k_B),
                       beta=np.where(bad, np.nan, np.exp(log_beta_B)), c_ref=c_ref)


@dataclass(frozen=True)
class Frontier:
    """One arm's fitted frontier over its swept levels (its best config per level)."""

    arm: str
    budgets_flops: tuple[float, ...]
    losses: tuple[float, ...]  # mean over seeds of the level's best config
    seeds: tuple[int, ...]  # seeds per level
    E: float | None
    k: float | None
    beta: float | None
    c_ref: float
    form: str  # "E + k (C/C_ref)^-beta" or "k (C/C_ref)^-beta (floor at its bound 0)"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.E is not None

    def fit(self) -> FrontierFit:
        assert self.ok, "no fit"
        return FrontierFit(np.array([self.E]), np.array([self.k]), np.array([self.beta]), self.c_ref)

    def curve(self, points: int = CURVE_POINTS) -> tuple[list[float], list[float]]:
        """Flops and fitted loss over the swept levels (for plots)."""
        if not self.ok:
            return [], []
        flops = np.geomspace(min(self.budgets_flops), max(self.budgets_flops), points)
        return flops.tolist(), self.fit().loss(flops)[0].tolist()


@dataclass(frozen=True)
class Multiplier:
    """How much compute the baseline needs to match `arm` at one of the arm's levels."""

    arm: str
    baseline: str
    flops: float  # the arm's level C
    loss: float  # the arm's fitted loss at C
    baseline_flops: float | None  # where the baseline's frontier reaches it (None: never)
    multiplier: float | None  # baseline_flops / flops
    ci: tuple[float, float | None] | None  # upper None: unbounded (some draws never reach it)
    level: float
    extrapolated: bool
    n_boot: int
    text: str
    warnings: list[str] = field(default_factory=list)



@dataclass(frozen=True)
class _ArmData:
    """One arm's cells as arrays: what the point fit and the bootstrap draw from."""

    arm: str
    flops_L: np.ndarray  # its levels, ascending
    level_M: np.ndarray  # level index of every cell
    mean_M: np.ndarray  # cell means over seeds
    n_M: np.ndarray  # seeds per cell
    residuals: np.ndarray  # pooled seed residuals, scaled by sqrt(n / (n - 1))
    dof: int  # sum of (n - 1) over cells

    def select(self, mean_BM: np.ndarray) -> np.ndarray:
        """(B, L): per level, the lowest cell mean (the best config, chosen again in every draw)."""
        out = np.empty((mean_BM.shape[0], len(self.flops_L)))
        for level in range(len(self.flops_L)):
            out[:, level] = mean_BM[:, self.level_M == level].min(axis=1)
        return out

    def weights(self) -> np.ndarray:
        """Seeds of each level's best config (the point estimate's selection)."""
        picked = self.select(self.mean_M[None, :])[0]
        return np.array([self.n_M[(self.level_M == lv) & (self.mean_M == picked[lv])][0]
                         for lv in range(len(self.flops_L))], dtype=float)

    def draw(self, n_boot: int, rng: np.random.Generator, expand: float) -> np.ndarray:
        """(n_boot, M) cell means with resampled residuals (module docstring)."""
        drawn = rng.choice(self.residuals, size=(n_boot, int(self.n_M.sum()))) * expand
        starts = np.concatenate(([0], np.cumsum(self.n_M)[:-1])).astype(int)
        means: np.ndarray = self.mean_M + np.add.reduceat(drawn, starts, axis=1) / self.n_M
        return means


def _arm_data(arm: str, arm_cells: Sequence[Cell]) -> _ArmData:
    flops_L = np.array(sorted({c.budget_flops for c in arm_cells}), dtype=float)
    residuals = [np.asarray(c.losses) - c.mean for c in arm_cells if c.n > 1]
    scaled = [r * math.sqrt(len(r) / (len(r) - 1)) for r in residuals]
    return _ArmData(arm=arm, flops_L=flops_L,
                    level_M=np.array([int(np.searchsorted(flops_L, c.budget_flops)) for c in arm_cells]),
                    mean_M=np.array([c.mean for c in arm_cells]), n_M=np.array([c.n for c in arm_cells]),
                    residuals=np.concatenate(scaled) if scaled else np.array([]),
                    dof=int(sum(len(r) - 1 for r in residuals)))


def _frontier(data: _ArmData, arm_cells: Sequence[Cell]) -> Frontier:
    means = data.select(data.mean_M[None, :])[0]
    fit = fit_frontiers(data.flops_L, means[None, :], data.weights())
    seeds = tuple(int(n) for n in data.weights())
    base = dict(arm=data.arm, budgets_flops=tuple(data.flops_L.tolist()), losses=tuple(means.tolist()), seeds=seeds,
                c_ref=fit.c_ref)
    if not np.isfinite(fit.E[0]):
        return Frontier(**base, E=None, k=None, beta=None, form="none",  # type: ignore[arg-type]
                        notes=["the loss does not fall with compute across the levels: no frontier"])
    notes = []
    form = "E + k (C/C_ref)^-beta"
    if fit.E[0] == 0.0:
        form = "k (C/C_ref)^-beta"
        notes.append("the fitted floor E would be negative: held at 0 (a pure power law)")
    if fit.beta[0] <= BETA_GRID[0] * 1.01 or fit.beta[0] >= BETA_GRID[-1] / 1.01:
        notes.append(f"exponent beta={fit.beta[0]:.3g} at the edge of its range [{BETA_GRID[0]}, {BETA_GRID[-1]}]")
    return Frontier(**base, E=float(fit.E[0]), k=float(fit.k[0]), beta=float(fit.beta[0]), form=form,  # type: ignore[arg-type]
                    notes=notes)


def _expansion(dof: int, level: float) -> float:
    """t_dof(q) / z(q): the small-sample widening of the percentile bootstrap (module docstring)."""
    q = 0.5 + level / 2
    return float(stats.t.ppf(q, dof) / stats.norm.ppf(q))


def _percentile_ci(log_m: np.ndarray, level: float) -> tuple[float, float | None] | None:
    """Percentile interval of multipliers from log draws; inf draws (never reached) may make it unbounded."""
    log_m = log_m[~np.isnan(log_m)]
    if log_m.size < 20:
        return None
    lo, hi = np.quantile(np.minimum(log_m, 700.0), [0.5 - level / 2, 0.5 + level / 2])
    return float(np.exp(lo)), (None if hi >= 700.0 else float(np.exp(hi)))


def _text(arm: str, baseline: str, flops: float, c0: float | None, m: float | None,
          ci: tuple[float, float | None] | None, level: float) -> str:
    if m is None or c0 is None:
        return (f"{arm} reaches at {flops:.3g} FLOPs a loss {baseline}'s fitted frontier never reaches "
                "(below its fitted floor E)")
    interval = "no interval" if ci is None else (
        f"{int(round(level * 100))}% CI {ci[0]:.2f}-" + ("unbounded" if ci[1] is None else f"{ci[1]:.2f}"))
    return f"{arm} reaches at {flops:.3g} FLOPs the loss {baseline} reaches at {c0:.3g}: multiplier {m:.2f} ({interval})"


def _arm_multipliers(data: _ArmData, frontier: Frontier, base: _ArmData, base_frontier: Frontier,
                     boot: tuple[np.ndarray, FrontierFit] | None, level: float, n_boot: int) -> list[Multiplier]:
    """One Multiplier per level of the arm; `boot` holds the two arms' refitted draws' (losses, base fit)."""
    out = []
    base_fit, arm_fit = base_frontier.fit(), frontier.fit()
    lo_base, hi_base = base.flops_L.min(), base.flops_L.max()
    for i, flops in enumerate(data.flops_L):
        loss = float(arm_fit.loss(flops)[0])
        c0 = float(base_fit.flops_for(loss)[0])
        m = c0 / flops if math.isfinite(c0) else None
        ci = None
        if boot is not None:
            arm_loss_B, base_draws = boot
            ci = _percentile_ci(np.log(base_draws.flops_for(arm_loss_B[:, i]) / flops), level)
        warnings = []
        extrapolated = not (lo_base * (1 - 1e-9) <= c0 <= hi_base * (1 + 1e-9))
        if m is not None and extrapolated:
            warnings.append(f"{base.arm} needs {c0:.3g} FLOPs, outside its swept budgets ({lo_base:.3g} to "
                            f"{hi_base:.3g}): read off its fitted frontier by extrapolation")
        if boot is None:
            warnings.append("no interval: every config has a single seed (set search.seeds >= 2)")
        elif ci is not None and ci[1] is None:
            warnings.append(f"in some bootstrap draws {base.arm}'s fitted floor lies above this loss: "
                            "the interval has no upper end")
        out.append(Multiplier(arm=data.arm, baseline=base.arm, flops=float(flops), loss=loss,
                              baseline_flops=c0 if m is not None else None, multiplier=m, ci=ci, level=level,
                              extrapolated=bool(extrapolated), n_boot=n_boot if boot is not None else 0,
                              text=_text(data.arm, base.arm, float(flops), c0, m, ci, level), warnings=warnings))
    return out


def compute_multipliers(cells_by_arm: dict[str, list[Cell]], baseline: str, *, n_boot: int = N_BOOT,
                        level: float = LEVEL, seed: int = 0,
                        expand: bool = True) -> tuple[list[Frontier], list[Multiplier], list[str]]:
    """Frontiers of every arm with >= MIN_BUDGETS levels, and each arm's multipliers against `baseline`.

    Returns (frontiers, multipliers, notes); notes say why a multiplier is missing. `expand=False` drops
    the small-sample widening (benchmarks/compare_calibration.py measures what it buys).
    """
    rng = np.random.default_rng(seed)
    data = {arm: _arm_data(arm, cs) for arm, cs in cells_by_arm.items() if cs}
    frontiers: dict[str, Frontier] = {}
    notes: list[str] = []
    for arm, d in data.items():
        if len(d.flops_L) < MIN_BUDGETS:
            notes.append(f"{arm}: {len(d.flops_L)} budget level(s); a frontier needs {MIN_BUDGETS}")
            continue
        frontiers[arm] = _frontier(d, cells_by_arm[arm])
    base_frontier = frontiers.get(baseline)
    if base_frontier is None or not base_frontier.ok:
        if baseline in data:
            notes.append(f"no multipliers: the baseline {baseline} has no fitted frontier")
        return list(frontiers.values()), [], notes
    base = data[baseline]
    base_draws = None
    if base.dof > 0:
        base_B = base.select(base.draw(n_boot, rng, _expansion(base.dof, level) if expand else 1.0))
        base_draws = fit_frontiers(base.flops_L, base_B, base.weights())
    out: list[Multiplier] = []
    for arm, frontier in frontiers.items():
        if arm == baseline or not frontier.ok:
            continue
        d = data[arm]
        boot = None
        if base_draws is not None and d.dof > 0:
            widen = _expansion(d.dof, level) if expand else 1.0
            arm_draws = fit_frontiers(d.flops_L, d.select(d.draw(n_boot, rng, widen)), d.weights())
            boot = (arm_draws.loss(d.flops_L), base_draws)
        out += _arm_multipliers(d, frontier, base, base_frontier, boot, level, n_boot)
    return list(frontiers.values()), out, notes
