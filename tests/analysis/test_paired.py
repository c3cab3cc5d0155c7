"""Paired seed statistics against hand-computed numbers, and the power figures against simulation.

With 3 seeds (2 degrees of freedom) Student's t has closed forms, so the expected numbers below are
worked by hand: quantile t_q = (2q - 1) / sqrt(2 q (1 - q)); two-sided p = 1 - |t| / sqrt(2 + t^2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from coe_sweep.analysis.paired import (
    detectable_difference,
    mean_ci,
    paired_difference,
    seeds_needed,
    t_power,
    verdict_of,
)

T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.302653


def test_paired_difference_by_hand() -> None:
    # differences (arm - baseline) per seed: -0.05, -0.04, -0.03 -> mean -0.04, sd 0.01
    d = paired_difference((0, 1, 2), (1.10, 1.12, 1.09), (0, 1, 2), (1.15, 1.16, 1.12))
    half = T975_DF2 * 0.01 / math.sqrt(3)  # 0.024841
    assert d.seeds == (0, 1, 2) and d.n == 3
    assert d.mean == pytest.approx(-0.04)
    assert d.sd == pytest.approx(0.01)
    assert d.ci == pytest.approx((-0.04 - half, -0.04 + half))
    t = -0.04 / (0.01 / math.sqrt(3))  # -6.928
    assert d.p_value == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t))  # 0.0202
    assert d.verdict == "better"
    assert d.text == "better (95% CI -0.065 to -0.015)"
    assert d.seeds_needed is None  # detected: nothing more to ask for


def test_verdict_follows_the_interval_not_the_sign() -> None:
    # the arm is lower on average (-0.0015) but the interval straddles 0
    d = paired_difference((0, 1, 2), (1.000, 0.990, 1.0055), (0, 1, 2), (1.004, 0.993, 1.003))
    # differences -0.004, -0.003, +0.0025: mean -0.0015, sd 0.0035
    half = T975_DF2 * 0.0035 / math.sqrt(3)
    assert d.mean == pytest.approx(-0.0015) and d.sd == pytest.approx(0.0035)
    assert d.ci == pytest.approx((-0.0015 - half, -0.0015 + half))
    assert d.verdict == "no detectable difference"
    assert d.text == f"no detectable difference (95% CI {-0.0015 - half:+.3f} to {-0.0015 + half:+.3f})"
    assert d.text == "no detectable difference (95% CI -0.010 to +0.007)"
    assert d.seeds_needed is not None and d.seeds_needed > 3
    worse = paired_difference((0, 1, 2), (1.15, 1.16, 1.12), (0, 1, 2), (1.10, 1.12, 1.09))
    assert worse.verdict == "worse" and worse.text == "worse (95% CI +0.015 to +0.065)"


def test_only_shared_seeds_pair_and_one_seed_cannot_tell() -> None:
    d = paired_difference((0, 1, 2, 3), (1.0, 1.1, 1.2, 9.9), (1, 2, 5), (1.0, 1.0, 9.9))
    assert d.seeds == (1, 2) and d.mean == pytest.approx(0.15)
    one = paired_difference((0, 1), (1.0, 1.1), (1, 7), (1.2, 0.0))
    assert one.n == 1 and one.ci is None and one.p_value is None and one.verdict == "not enough seeds"
    assert "1 paired seed" in one.text and "search.seeds" in one.text
    assert one.mean == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="share no seed"):
        paired_difference((0,), (1.0,), (1,), (1.0,))


def test_mean_ci_by_hand() -> None:
    m = mean_ci([1.0, 1.2, 1.1])
    assert m.mean == pytest.approx(1.1) and m.sd == pytest.approx(0.1)
    assert m.ci == pytest.approx((1.1 - T975_DF2 * 0.1 / math.sqrt(3), 1.1 + T975_DF2 * 0.1 / math.sqrt(3)))
    assert mean_ci([2.0]).ci is None
    assert verdict_of((-0.012, 0.009), 0.95, 3)[1] == "no detectable difference (95% CI -0.012 to +0.009)"


def test_power_figures_match_simulated_t_tests() -> None:
    """At the minimum detectable difference a simulated paired t-test finds the effect 80% of the time."""
    from scipy import stats

    rng = np.random.default_rng(3)
    sd, n = 0.02, 3
    mdd = detectable_difference(sd, n)
    assert mdd is not None and 2.5 * sd / math.sqrt(n) < mdd < 10 * sd
    d = rng.normal(mdd, sd, size=(20_000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    found = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert found == pytest.approx(0.8, abs=0.015)
    assert t_power(mdd, sd, n) == pytest.approx(0.8, abs=1e-6)
    assert t_power(0.0, sd, n) == pytest.approx(0.05, abs=1e-9)  # no effect: the test's false-positive rate
    # seeds_needed inverts it: the MDD at n seeds needs n seeds; half of it needs more
    for n_seeds in (3, 5, 10):
        assert seeds_needed(detectable_difference(sd, n_seeds) * 1.0001, sd) == n_seeds  # type: ignore[operator]
    assert seeds_needed(mdd / 2, sd) > 3  # type: ignore[operator]
    assert detectable_difference(sd, 1) is None and seeds_needed(0.0, sd) is None
