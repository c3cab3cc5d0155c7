"""Fitted parametric laws as answers: Approach 3 and the CoE/MoE law, their intervals and optima.

- `fit_approach3(data)`: the Chinchilla form L = E + A/N^alpha + B/D^beta over every finished
  trial (on or off the levels), arms pooled.
- `fit_coe_law(data)`: the forms of `parametric.LawForm` the data can identify (an iterations term
  only when C varies, a sparsity term only when S varies) are scored by 5-fold held-out error over
  config groups; the simplest form within one standard error of the best is kept (the one-standard-
  error rule: a richer form must earn its extra parameters on trials it did not see). The answer
  states the scores and why, and psi in words: "one more iteration is worth as much as X% more
  active parameters" (X = h(C+1)/h(C) - 1, the same factor on N_eff as X% more N).
- Compute-optimal allocation (`ParametricFit.optimum`): with FLOPs/token f = k N^b (`lawdata.FlopsMap`)
  a budget C buys D = C / (k N^b) tokens, so L(N) = E + A m^-alpha N^-alpha + B k^beta C^-beta N^(b beta)
  (m = h(C_arm; psi) S_arm^gamma; 1 for the pooled Approach 3) is smallest at
      N* = [alpha A m^-alpha C^beta / (b beta B k^beta)]^(1 / (alpha + b beta)),   D* = C / (k N*^b)
  (Hoffmann et al. 2022, eq. 4, when b = 1, k = 6, m = 1); N* grows as C^(beta / (alpha + b beta)).
  Every bootstrap replicate gives its own optimum; intervals are basic bootstrap intervals (in log
  space for the positive N*, D*, loss*, A and B), see `basic_interval`.
- Lack of fit: per budget (per budget and arm when there are several arms), the mean residual of its
  trials (interval +- z s / sqrt(groups), s the residual sd) must contain 0; `audit.lack_of_fit`
  decides when the misses are too many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from coe_sweep.analysis import columns as C
from coe_sweep.analysis import parametric as P
from coe_sweep.analysis.audit import lack_of_fit
from coe_sweep.analysis.lawdata import FlopsMap, LawData, flops_map

N_BOOT = 200
MIN_TRIALS = 8


def basic_interval(point: float, values: np.ndarray, ci: float) -> tuple[float, float] | None:
    """Basic (reverse-percentile) bootstrap interval [2 point - q_hi, 2 point - q_lo]: it corrects the shift
    nonlinear least squares gives the replicates (measured coverage: benchmarks/law_recovery.py)."""
    values = values[np.isfinite(values)]
    if values.size < 2 or not np.isfinite(point):
        return None
    lo, hi = np.percentile(values, [50 * (1 - ci), 50 * (1 + ci)])
    return float(2 * point - hi), float(2 * point - lo)


def _log_interval(point: float, values: np.ndarray, ci: float) -> tuple[float, float] | None:
    """basic_interval of a positive quantity, taken in log space."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bounds = basic_interval(float(np.log(point)), np.log(values), ci)
    return None if bounds is None else (float(np.exp(bounds[0])), float(np.exp(bounds[1])))


@dataclass
class Optimum:
    flops: float
    arm: str | None
    n_opt: float
    n_opt_ci: tuple[float, float] | None
    d_opt: float
    d_opt_ci: tuple[float, float] | None
    loss_opt: float
    loss_opt_ci: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable(dict(self.__dict__))  # type: ignore[return-value]


@dataclass
class ParametricFit:
    name: str  # approach3 | coe_law
    form: P.LawForm
    method: str
    theta: np.ndarray = field(repr=False)  # PARAMS order
    boot: np.ndarray = field(repr=False)  # (n_boot, 7)
    ci: float
    n_trials: int
    n_groups: int
    rmse: float
    flops_map: FlopsMap
    arm_knobs: dict[str, tuple[float, float]]  # arm -> (C, S) of its optimum; {} for a pooled law
    warnings: list[str] = field(default_factory=list)

    def value(self, name: str) -> float:
        return float(self.theta[P.PARAMS.index(name)])

    def interval(self, name: str) -> tuple[float, float] | None:
        """Basic bootstrap interval of one parameter (A and B, which are > 0, in log space)."""
        values = self.boot[:, P.PARAMS.index(name)]
        if name in ("A", "B"):
            return _log_interval(self.value(name), values, self.ci)
        bounds = basic_interval(self.value(name), values, self.ci)
        if bounds is not None and name == "E":  # E >= 0 is a constraint of every fit: the reflection may not cross it
            return max(bounds[0], 0.0), max(bounds[1], 0.0)
        return bounds

    def params(self) -> dict[str, tuple[float, tuple[float, float] | None]]:
        """The fitted parameters of this form (name -> (value, interval))."""
        names = ["E", "A", "B", *self.form.free]
        return {k: (self.value(k), self.interval(k)) for k in names}

    def _n_exponent_rows(self, theta: np.ndarray) -> np.ndarray:
        b = self.flops_map.slope
        return theta[..., 4] / (theta[..., 3] + b * theta[..., 4])

    def n_exponent(self) -> tuple[float, tuple[float, float] | None]:
        """Exponent of N*(C) (and 1 - b times it for D*), with its interval."""
        point = float(self._n_exponent_rows(self.theta))
        return point, basic_interval(point, self._n_exponent_rows(self.boot), self.ci)

    def loss(self, n: np.ndarray, d: np.ndarray, c: np.ndarray | float = 1.0, s: np.ndarray | float = 1.0) -> np.ndarray:
        return P.predict(self.form, self.theta, np.asarray(n, float), np.asarray(d, float), c, s)

    def _optimum_rows(self, theta: np.ndarray, flops: float, arm: str | None) -> tuple[np.ndarray, ...]:
        E, A, B, al, be, psi, gamma = (theta[:, i] for i in range(len(P.PARAMS)))
        c, s = self.arm_knobs.get(arm, (1.0, 1.0)) if arm is not None else (1.0, 1.0)
        ln_m = P.ln_multiplier(self.form, psi, gamma, np.full_like(psi, c), np.full_like(psi, s))
        b, log_k, ln_c = self.flops_map.slope, self.flops_map.log_k_of(arm), np.log(flops)
        with np.errstate(all="ignore"):
            ln_a_eff = np.log(A) - al * ln_m
            ln_n = (np.log(al) + ln_a_eff + be * ln_c - np.log(b) - np.log(be) - np.log(B) - be * log_k) / (al + b * be)
            ln_d = ln_c - log_k - b * ln_n
            loss = E + np.exp(ln_a_eff - al * ln_n) + B * np.exp(-be * ln_d)
        return np.exp(ln_n), np.exp(ln_d), loss

    def optimum(self, flops: float, arm: str | None = None) -> Optimum:
        """Compute-optimal N, D and loss at `flops` for `arm` (None: the pooled law / no arm term)."""
        if arm is not None and arm not in self.arm_knobs:
            raise ValueError(f"arm={arm!r} is unknown: expected one of {', '.join(sorted(self.arm_knobs)) or 'none'}")
        (n,), (d,), (loss,) = self._optimum_rows(self.theta[None], flops, arm)
        bn, bd, bl = self._optimum_rows(self.boot, flops, arm)
        return Optimum(float(flops), arm, float(n), _log_interval(n, bn, self.ci), float(d), _log_interval(d, bd, self.ci),
                       float(loss), _log_interval(loss, bl, self.ci))

    def best_arm(self, flops: float) -> Optimum:
        """The arm with the lowest predicted optimal loss at `flops` (the pooled optimum without arms)."""
        if not self.arm_knobs:
            return self.optimum(flops)
        return min((self.optimum(flops, arm) for arm in sorted(self.arm_knobs)), key=lambda o: o.loss_opt)


def arm_knobs(data: LawData, gamma: float) -> dict[str, tuple[float, float]]:
    """Per arm the (C, S) its optimum is stated at: its iterations, and of the sparsities it sampled the one
    the fitted law favours (the largest when gamma >= 0: S enters only through N_eff)."""
    out = {}
    for arm in sorted(set(data.arm)):
        mask = data.arm == arm
        sampled = data.sparsity[mask]
        out[str(arm)] = (float(np.median(data.iterations[mask])), float(sampled.max() if gamma >= 0 else sampled.min()))
    return out


def residual_lack_of_fit(fit: ParametricFit, data: LawData) -> str | None:
    """Budgets (budget x arm cells when there are several arms) whose trials' mean residual interval
    excludes 0 (see the module docstring)."""
    pred = fit.loss(data.n, data.d, data.iterations, data.sparsity)
    resid = data.loss - pred
    sd = float(np.std(resid, ddof=len(fit.form.free) + 3)) if len(data) > len(fit.form.free) + 3 else 0.0
    z = float(norm.ppf(0.5 + fit.ci / 2))
    by_arm = np.unique(data.arm).size > 1
    cells = sorted({(b, a if by_arm else "") for b, a in zip(data.budget, data.arm, strict=True) if b is not None},
                   key=lambda cell: (np.median(data.flops[data.budget == cell[0]]), cell[1]))
    labels, values, intervals = [], [], []
    for budget, arm in cells:
        mask = (data.budget == budget) & ((data.arm == arm) if by_arm else True)
        half = z * sd / np.sqrt(max(np.unique(data.group[mask]).size, 1))
        labels.append(f"{budget} {arm}".strip())
        values.append(float(pred[mask].mean()))
        intervals.append((float(data.loss[mask].mean() - half), float(data.loss[mask].mean() + half)))
    what = "budget x arm cells'" if by_arm else "budgets'"
    return lack_of_fit(f"the {fit.name} law ({fit.form.name})", labels, values, intervals, fit.ci, unit=what)


def make_result(name: str, form: P.LawForm, data: LawData, theta: np.ndarray, boot: np.ndarray, fmap: FlopsMap,
            ci: float, method: str, pooled: bool) -> ParametricFit:
    pred = P.predict(form, theta, data.n, data.d, data.iterations, data.sparsity)
    knobs = {} if pooled else arm_knobs(data, float(theta[P.PARAMS.index("gamma")]))
    out = ParametricFit(name, form, method, theta, boot, ci, len(data), data.n_groups,
                        float(np.sqrt(np.mean((pred - data.loss) ** 2))), fmap, knobs)
    misfit = residual_lack_of_fit(out, data)
    out.warnings += [misfit] if misfit else []
    failed = int((~np.isfinite(boot).all(axis=1)).sum())
    if failed > 0.1 * len(boot):
        out.warnings.append(f"{failed} of {len(boot)} bootstrap refits failed: intervals rest on the rest")
    return out


def check_data(data: LawData, what: str) -> None:
    if len(data) < MIN_TRIALS:
        raise ValueError(f"{what} needs >= {MIN_TRIALS} finished trials with N, D and loss, got {len(data)}")
    if np.unique(np.round(np.log(data.flops[np.isfinite(data.flops)]), 1)).size < 2:
        raise ValueError(f"{what} needs trials at >= 2 distinct training budgets")


def fit_form(name: str, form: P.LawForm, data: LawData, *, method: P.Method = P.DEFAULT_METHOD,
             n_boot: int = N_BOOT, seed: int = 0, ci: float = 0.95, pooled: bool = False,
             fmap: FlopsMap | None = None) -> ParametricFit:
    """One form fitted with `method`, bootstrapped over config groups."""
    check_data(data, name)
    fmap = fmap or flops_map(data)
    theta = P.fit(form, data, method)
    boot = P.bootstrap(form, data, method, theta, n_boot, seed)
    return make_result(name, form, data, theta, boot, fmap, ci, method, pooled)


def fit_approach3(data: LawData, *, method: P.Method = P.DEFAULT_METHOD, n_boot: int = N_BOOT, seed: int = 0,
                  ci: float = 0.95) -> ParametricFit:
    """Approach 3: the Chinchilla form over every finished trial, arms pooled."""
    return fit_form("approach3", P.CHINCHILLA, data, method=method, n_boot=n_boot, seed=seed, ci=ci, pooled=True)
