"""Law recovery on seeded draws from known laws: shared by tests/analysis/test_recovery.py (a few draws)
and benchmarks/law_recovery.py (many draws, the table in the report).

Two scenarios per draw, both with truth drawn around Chinchilla's constants:
- `dense`: one arm (C = 1), the Chinchilla form; Approach 2, Approach 3 by Huber on log-loss and
  Approach 3 by variable projection are all correctly specified here.
- `coe`: five arms (C = 1, 2, 3 at S = 4; C = 1, 2 at S = 8), N_eff = N C^(1-psi) S^gamma; Approach 2
  and 3 pool the arms (what they would do with such a sweep), the CoE law models them.
Errors are relative for the N* exponent a = beta / (alpha + beta) (the number both Approach 2 and 3
report), alpha and beta; absolute for psi; N* at 10x the largest budget relative (coe: the best arm).
Each budget samples 7 sizes over x36, centred within x2 of the true optimum at random (a real sweep's
guess is off), which is where Approach 2's parabola leans. Noise sd 0.005, 0.01 or 0.02 nats; a third of
the draws have 5% outlier trials (loss + 0.1 to 0.5: went wrong but finished).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from coe_sweep.analysis import isoflop_profiles, scaling_fit
from coe_sweep.analysis import parametric as P
from coe_sweep.analysis.coelaw import fit_coe_law
from coe_sweep.analysis.lawdata import law_data
from coe_sweep.analysis.laws import basic_interval, fit_approach3

from .synthetic import flops_per_token_of, law_frame

BUDGETS = [1e18, 3e18, 1e19, 3e19, 1e20]
COE_ARMS = ((1, 8, 2), (2, 8, 2), (3, 8, 2), (1, 8, 1), (2, 8, 1))
OFF_CENTRE = 0.7  # each budget's size grid is centred within x2 of the true optimum, at random


@dataclass(frozen=True)
class Truth:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    psi: float
    gamma: float
    noise: float
    outliers: float

    @property
    def a(self) -> float:
        return self.beta / (self.alpha + self.beta)

    def n_opt(self, flops: float, iterations: int = 1, sparsity: float = 1.0) -> float:
        m = iterations ** (1 - self.psi) * sparsity**self.gamma
        k = flops_per_token_of(1.0, iterations)
        return (self.alpha * self.A * m**-self.alpha * flops**self.beta / (self.beta * self.B * k**self.beta)) ** (
            1 / (self.alpha + self.beta))

    def loss_opt(self, flops: float, iterations: int = 1, sparsity: float = 1.0) -> float:
        n = self.n_opt(flops, iterations, sparsity)
        d = flops / flops_per_token_of(n, iterations)
        m = iterations ** (1 - self.psi) * sparsity**self.gamma
        return self.E + self.A / (n * m) ** self.alpha + self.B / d**self.beta


def draw_truth(rng: np.random.Generator) -> Truth:
    return Truth(E=rng.uniform(1.5, 2.0), A=float(np.exp(rng.uniform(np.log(200), np.log(800)))),
                 B=float(np.exp(rng.uniform(np.log(200), np.log(800)))), alpha=rng.uniform(0.25, 0.45),
                 beta=rng.uniform(0.25, 0.45), psi=rng.uniform(0.2, 0.8), gamma=rng.uniform(0.0, 0.2),
                 noise=float(rng.choice([0.005, 0.01, 0.02])), outliers=float(rng.choice([0.0, 0.0, 0.05])))


@dataclass
class DrawResult:
    errors: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> error
    covered: dict[str, dict[str, bool]] = field(default_factory=dict)  # method -> parameter -> CI covers truth
    seconds: dict[str, float] = field(default_factory=dict)  # what was timed -> wall seconds


def _covers(ci: tuple[float, float] | None, value: float) -> bool:
    return ci is not None and ci[0] <= value <= ci[1]


def _parametric(result: DrawResult, name: str, fit: P.LawForm | None, truth: Truth, theta: np.ndarray,
                boot: np.ndarray | None, flops_map_slope: float = 1.0) -> None:
    alpha, beta = theta[3], theta[4]
    a = beta / (alpha + flops_map_slope * beta)
    result.errors[name] = {"a": abs(a / truth.a - 1), "alpha": abs(alpha / truth.alpha - 1),
                           "beta": abs(beta / truth.beta - 1)}
    if boot is not None:
        a_boot = boot[:, 4] / (boot[:, 3] + flops_map_slope * boot[:, 4])
        result.covered[name] = {"a": _covers(basic_interval(a, a_boot, 0.95), truth.a),
                                "alpha": _covers(basic_interval(alpha, boot[:, 3], 0.95), truth.alpha),
                                "beta": _covers(basic_interval(beta, boot[:, 4], 0.95), truth.beta)}


def run_dense(truth: Truth, seed: int, *, n_boot: int = 200, huber_boot: int = 0) -> DrawResult:
    """Single-arm sweep: Approach 2, Approach 3 (huber_log and varpro)."""
    theta = (truth.E, truth.A, truth.B, truth.alpha, truth.beta)
    frame = law_frame(theta, BUDGETS, noise=truth.noise, seed=seed, off_centre=OFF_CENTRE,
                      outliers=truth.outliers)
    result = DrawResult()
    profiles = isoflop_profiles(frame, n_boot=n_boot, seed=seed)
    a2 = scaling_fit(profiles, n_boot=n_boot, seed=seed)
    result.errors["approach2"] = {"a": abs(a2.x_law.exponent / truth.a - 1)}
    result.covered["approach2"] = {"a": _covers(a2.x_law.exponent_ci, truth.a)}
    data = law_data(frame)
    for method, boots in (("huber_log", huber_boot), ("varpro", n_boot)):
        start = time.perf_counter()
        est = P.fit(P.CHINCHILLA, data, method)  # type: ignore[arg-type]
        result.seconds[f"approach3[{method}] point fit"] = time.perf_counter() - start
        start = time.perf_counter()
        boot = P.bootstrap(P.CHINCHILLA, data, method, est, boots, seed) if boots else None  # type: ignore[arg-type]
        if boots:
            result.seconds[f"approach3[{method}] {boots} refits"] = time.perf_counter() - start
        _parametric(result, f"approach3[{method}]", P.CHINCHILLA, truth, est, boot)
    return result


def run_coe(truth: Truth, seed: int, *, n_boot: int = 200) -> DrawResult:
    """Five-arm CoE/MoE sweep: Approach 2 and 3 pooled, the CoE law per arm."""
    theta = (truth.E, truth.A, truth.B, truth.alpha, truth.beta)
    frame = law_frame(theta, BUDGETS, psi=truth.psi, gamma=truth.gamma, arms=COE_ARMS, noise=truth.noise, seed=seed,
                      off_centre=OFF_CENTRE, outliers=truth.outliers)
    result = DrawResult()
    profiles = isoflop_profiles(frame, n_boot=n_boot, seed=seed)
    target = 10 * BUDGETS[-1]
    best = min(COE_ARMS, key=lambda arm: truth.loss_opt(target, arm[0], arm[1] / arm[2]))
    n_true = truth.n_opt(target, best[0], best[1] / best[2])
    a2 = scaling_fit(profiles, n_boot=n_boot, seed=seed)
    result.errors["approach2"] = {"a": abs(a2.x_law.exponent / truth.a - 1),
                                  "n_opt_10x": abs(a2.predict(target).x_opt / n_true - 1)}
    result.covered["approach2"] = {"a": _covers(a2.x_law.exponent_ci, truth.a)}
    data = law_data(frame)
    a3 = fit_approach3(data, n_boot=n_boot, seed=seed)
    _parametric(result, "approach3", P.CHINCHILLA, truth, a3.theta, a3.boot)
    result.errors["approach3"]["n_opt_10x"] = abs(a3.optimum(target).n_opt / n_true - 1)
    start = time.perf_counter()
    law = fit_coe_law(data, n_boot=n_boot, seed=seed)
    result.seconds["coe_law (6 forms, CV, bootstrap)"] = time.perf_counter() - start
    _parametric(result, "coe_law", law.fit.form, truth, law.fit.theta, law.fit.boot, law.fit.flops_map.slope)
    arm_name = "moe" if best[0] == 1 else f"coe-C{best[0]}"
    result.errors["coe_law"]["n_opt_10x"] = abs(law.fit.optimum(target, arm_name).n_opt / n_true - 1)
    if law.psi is not None:
        result.errors["coe_law"]["psi_abs"] = abs(law.psi - truth.psi)
        result.covered["coe_law"]["psi"] = _covers(law.psi_ci, truth.psi)
        worth = 100 * (2 ** (1 - truth.psi) - 1)  # one more iteration (1 -> 2) in % more active params
        result.errors["coe_law"]["worth_pp"] = abs(law.worth[0].pct - worth)
        result.covered["coe_law"]["worth"] = _covers(law.worth[0].pct_ci, worth)
    result.errors["coe_law"]["wrong_chain"] = float(law.fit.form.chain != "power")
    result.errors["coe_law"]["sparsity_kept"] = float(law.fit.form.sparsity)
    return result


def gmean(values: list[float]) -> float:
    values_arr = np.maximum(np.asarray(values, dtype=float), 1e-12)
    return float(np.exp(np.mean(np.log(values_arr))))
