"""The batched IRLS engine agrees with scipy.optimize.least_squares and treats weights as resamples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from coe_sweep.analysis.robust import fit_robust, irls, weighted_lstsq


def _design(t: np.ndarray) -> np.ndarray:
    return np.stack([t * t, t, np.ones_like(t)], axis=1)


@pytest.mark.parametrize("loss", ["soft_l1", "huber", "cauchy", "linear"])
def test_irls_matches_scipy_least_squares(loss: str) -> None:
    rng = np.random.default_rng(3)
    t = np.linspace(-2, 2, 15)
    y = 0.3 * t * t - 0.2 * t + 1.0 + rng.normal(0, 0.05, t.size)
    y[4] += 1.5  # an outlier, so the robust losses differ from OLS
    A = _design(t)
    scale = 0.05
    ours = irls(A, y, np.ones((1, t.size)), loss=loss, f_scale=scale)[0]  # type: ignore[arg-type]
    ref = least_squares(lambda b: A @ b - y, x0=np.zeros(3), loss=loss, f_scale=scale,
                        xtol=1e-15, ftol=1e-15, gtol=1e-15).x
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)


def test_weights_equal_duplicated_rows() -> None:
    rng = np.random.default_rng(0)
    t = rng.normal(size=10)
    y = 1 + t + 0.5 * t * t + rng.normal(0, 0.1, 10)
    counts = rng.integers(0, 3, size=10)
    counts[:3] = 1  # keep >= 3 distinct x
    dup = np.repeat(np.arange(10), counts)
    weighted = irls(_design(t), y, counts[None].astype(float), loss="soft_l1", f_scale=0.1)[0]
    expanded = irls(_design(t[dup]), y[dup], np.ones((1, dup.size)), loss="soft_l1", f_scale=0.1)[0]
    np.testing.assert_allclose(weighted, expanded, rtol=1e-8)


def test_singular_weighting_gives_nan_not_garbage() -> None:
    t = np.linspace(-1, 1, 5)
    w = np.array([[1.0, 0, 0, 0, 2.0], [1.0, 1, 1, 1, 1]])  # row 0: only 2 distinct x for 3 params
    beta = weighted_lstsq(_design(t), 2 * t * t + 1, w)
    assert np.isnan(beta[0]).all()
    np.testing.assert_allclose(beta[1], [2.0, 0.0, 1.0], atol=1e-12)


def test_fit_robust_estimates_scale_from_residuals() -> None:
    rng = np.random.default_rng(1)
    t = np.linspace(-2, 2, 200)
    y = t * t + rng.normal(0, 0.2, t.size)
    _, scale = fit_robust(_design(t), y, loss="soft_l1")
    assert 0.15 < scale < 0.25  # MAD scale of N(0, 0.2) noise


def test_bad_loss_and_scale_are_named() -> None:
    with pytest.raises(ValueError, match="robust_loss='l2'.*soft_l1"):
        irls(_design(np.arange(4.0)), np.arange(4.0), np.ones((1, 4)), loss="l2", f_scale=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="f_scale=0"):
        irls(_design(np.arange(4.0)), np.arange(4.0), np.ones((1, 4)), loss="huber", f_scale=0)


def test_linear_refits_every_weighting_even_from_a_start() -> None:
    """Fix: `linear` used to return its starting coefficients, so every bootstrap refit equalled the point fit."""
    rng = np.random.default_rng(5)
    t = np.linspace(-2, 2, 12)
    y = 0.4 * t * t + 0.1 * t + 2.0 + rng.normal(0, 0.05, t.size)
    w = rng.integers(0, 3, size=(4, t.size)).astype(float)
    w[:, :3] = 1.0
    start = np.repeat(np.array([[9.0, 9.0, 9.0]]), 4, axis=0)
    refits = irls(_design(t), y, w, loss="linear", f_scale=0.05, beta0_BP=start)
    np.testing.assert_allclose(refits, weighted_lstsq(_design(t), y, w), rtol=1e-10)
