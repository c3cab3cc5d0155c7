"""Parametric laws: both fitters recover a known law, the allocation formula is the true minimum, bootstraps
resample seed groups, the Huber polish resists outliers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from coe_sweep.analysis import parametric as P
from coe_sweep.analysis.lawdata import FlopsMap, flops_map, law_data
from coe_sweep.analysis.laws import fit_approach3, fit_form

from .synthetic import CHINCHILLA_THETA, law_frame

BUDGETS = [1e18, 3e18, 1e19, 3e19, 1e20]
TRUE = np.array([*CHINCHILLA_THETA, 1.0, 0.0])


@pytest.mark.parametrize("method", P.METHODS)
def test_noise_free_law_is_recovered_exactly(method: str) -> None:
    data = law_data(law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.0))
    theta = P.fit(P.CHINCHILLA, data, method)  # type: ignore[arg-type]
    np.testing.assert_allclose(theta[[0, 3, 4]], TRUE[[0, 3, 4]], rtol=2e-3)
    np.testing.assert_allclose(theta[[1, 2]], TRUE[[1, 2]], rtol=3e-2)
    pred = P.predict(P.CHINCHILLA, theta, data.n, data.d)
    assert np.max(np.abs(pred - data.loss)) < 1e-3


def test_coe_form_recovers_psi_and_gamma() -> None:
    arms = ((1, 8, 2), (2, 8, 2), (3, 8, 2), (1, 8, 1))
    data = law_data(law_frame(CHINCHILLA_THETA, BUDGETS, psi=0.3, gamma=0.15, arms=arms, noise=0.0))
    theta = P.fit(P.LawForm("power", True), data, "varpro")
    assert theta[5] == pytest.approx(0.3, abs=2e-3) and theta[6] == pytest.approx(0.15, abs=2e-3)
    linear = law_data(law_frame(CHINCHILLA_THETA, BUDGETS, psi=0.6, chain="linear", arms=arms[:3], noise=0.0))
    assert P.fit(P.LawForm("linear"), linear, "varpro")[5] == pytest.approx(0.6, abs=2e-3)


def test_allocation_is_the_minimum_along_the_budget() -> None:
    """The closed-form N*, D* equal a numerical minimisation of L(N, C / f(N)) with a non-6N FLOPs map."""
    data = law_data(law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.005, seed=3))
    fit = fit_approach3(data, n_boot=20)
    fmap = FlopsMap(slope=0.93, log_k={}, log_k_pooled=float(np.log(9.0)), source="test", max_rel_error=0.0)
    fit.flops_map = fmap
    for flops in (1e19, 1e22):
        opt = fit.optimum(flops)

        def loss_at(ln_n: float, flops: float = flops) -> float:
            n = np.exp(ln_n)
            return float(fit.loss(np.array([n]), np.array([flops / fmap(n)]))[0])

        best = minimize_scalar(loss_at, bounds=(np.log(1e5), np.log(1e14)), method="bounded",
                               options={"xatol": 1e-10})
        assert opt.n_opt == pytest.approx(np.exp(best.x), rel=1e-4)
        assert opt.d_opt == pytest.approx(flops / fmap(opt.n_opt), rel=1e-9)
        assert opt.loss_opt == pytest.approx(best.fun, rel=1e-9)
        assert opt.n_opt_ci[0] < opt.n_opt < opt.n_opt_ci[1]  # type: ignore[index]
    exponent, ci = fit.n_exponent()
    assert exponent == pytest.approx(fit.value("beta") / (fit.value("alpha") + 0.93 * fit.value("beta")))


def test_flops_map_is_fitted_per_arm_from_the_accounting() -> None:
    arms = ((1, 8, 2), (2, 8, 2), (3, 8, 2))
    data = law_data(law_frame(CHINCHILLA_THETA, BUDGETS, arms=arms, noise=0.0))
    fmap = flops_map(data)
    assert fmap.source == "accounting" and fmap.slope == pytest.approx(1.0, abs=1e-9)
    for c, arm in ((1, "moe"), (2, "coe-C2"), (3, "coe-C3")):
        assert np.exp(fmap.log_k[arm]) == pytest.approx(6 * (1 + 0.15 * (c - 1)), rel=1e-9)
    no_fpt = law_data(law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.0).drop(columns=["train_flops_per_token"]))
    assert flops_map(no_fpt).source == "flops / tokens"
    bare = law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.0).drop(columns=["train_flops_per_token", "train_flops"])
    assert flops_map(law_data(bare)).source == "6N"


def test_group_weights_move_a_configs_seeds_together() -> None:
    group = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])  # 4 configs x 3 seeds
    w = P.group_weights(group, 500, np.random.default_rng(0))
    assert w.shape == (500, 12) and np.all(w.sum(axis=1) == 12)
    for g in range(4):
        members = w[:, group == g]
        assert np.all(members == members[:, :1])  # a config's seeds are drawn (or not) together
    assert len({tuple(row) for row in w}) >= 30  # of the 35 multisets of 4 draws from 4 configs


def test_seed_groups_come_from_the_frame() -> None:
    frame = law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.01, seeds=3)
    data = law_data(frame)
    assert len(data) == 3 * data.n_groups and set(data.seed) == {0, 1, 2}


def test_huber_polish_resists_outliers() -> None:
    """Least squares alone is pulled by 5% wild trials; the polished varpro estimate is not."""
    frame = law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.005, seed=7, outliers=0.05)
    data = law_data(frame)
    robust = P.fit(P.CHINCHILLA, data, "varpro")
    plain = P.fit_varpro(P.CHINCHILLA, data)[0]
    robust_err, plain_err = np.abs(robust[3:5] / TRUE[3:5] - 1), np.abs(plain[3:5] / TRUE[3:5] - 1)
    assert robust_err.max() < 0.03 and plain_err.max() > 0.15


def test_bootstrap_intervals_cover_and_are_seeded() -> None:
    data = law_data(law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.01, seed=2, seeds=2))
    a = fit_form("approach3", P.CHINCHILLA, data, n_boot=100, seed=1, pooled=True)
    b = fit_form("approach3", P.CHINCHILLA, data, n_boot=100, seed=1, pooled=True)
    np.testing.assert_array_equal(a.boot, b.boot)
    for name, true in (("alpha", TRUE[3]), ("beta", TRUE[4]), ("E", TRUE[0])):
        lo, hi = a.interval(name)  # type: ignore[misc]
        assert lo < true < hi and hi - lo < 0.5 * true
    with pytest.raises(ValueError, match="method='ols'"):
        P.fit(P.CHINCHILLA, data, "ols")  # type: ignore[arg-type]


def test_too_few_trials_or_budgets_are_refused() -> None:
    frame = law_frame(CHINCHILLA_THETA, [1e18], noise=0.0, sizes=9)
    with pytest.raises(ValueError, match="2 distinct training budgets"):
        fit_approach3(law_data(frame))
    with pytest.raises(ValueError, match=">= 8 finished trials"):
        fit_approach3(law_data(frame.iloc[:5]))


def test_a_law_with_no_parameter_term_fits_and_bootstraps_without_nan() -> None:
    """Loss that does not depend on N at all (a single family whose sizes do not matter): the point fit
    sends the N term towards 0, and the batched refits must start from there without log(0) or a
    singular system; every bootstrap row stays finite."""
    from coe_sweep.analysis.lawdata import LawData

    rng = np.random.default_rng(0)
    n = np.repeat([1e4, 2e4, 4e4, 8e4], 6).astype(float)
    d = np.tile([1e5, 2e5, 4e5, 8e5, 1.6e6, 3.2e6], 4).astype(float)
    loss = 0.5 + 300 / d**0.5 + rng.normal(0, 0.01, n.size)
    m = n.size
    data = LawData(n=n, d=d, loss=loss, flops=6 * n * d, flops_per_token=6 * n, iterations=np.ones(m),
                   sparsity=np.ones(m), arm=np.array(["moe"] * m), group=np.arange(m),
                   budget=np.array([None] * m), seed=np.zeros(m, int))
    with np.errstate(invalid="raise", divide="raise"):
        theta = P.fit(P.CHINCHILLA, data, "varpro")
        boot = P.bootstrap(P.CHINCHILLA, data, "varpro", theta, 50, 0)
    assert np.isfinite(boot).all()
    assert theta[P.PARAMS.index("E")] == pytest.approx(0.5, abs=0.05)  # E and the D term are still found
    assert theta[P.PARAMS.index("beta")] == pytest.approx(0.5, abs=0.1)


