"""Calibration of the arm comparison on seeded simulated sweeps whose truth is known (quick version).

benchmarks/compare_calibration.py runs the same scenarios with many more repetitions and prints the rates.
Each repetition draws fresh noise for a 3-level, 3-seed sweep of MoE(K=4) vs CoE(C=2, K=2) plus an
A/A copy of the baseline (the same config with its own noise: true difference exactly 0, multiplier 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from runners.simulated import SimulationLaw

from .simulated import COE_2_K, MOE_2K, Tally, design, run_scenario

REPS, N_BOOT = 40, 300


@pytest.fixture(scope="module")
def default_law() -> Tally:
    d = design({"moe_2k": MOE_2K, "coe_2_k": COE_2_K}, SimulationLaw(), copies={"moe_copy": "moe_2k"})
    return run_scenario(d, baseline="moe_2k", effect_arm="coe_2_k", null_arm="moe_copy", seeds=3, reps=REPS,
                        n_boot=N_BOOT, rng=np.random.default_rng(11))


def test_no_true_effect_reads_as_no_detectable_difference(default_law: Tally) -> None:
    assert len(default_law.no_difference) == 3 * REPS
    assert Tally.rate(default_law.no_difference) >= 0.90
    assert Tally.rate(default_law.null_mult_covered) >= 0.85


def test_intervals_cover_the_true_difference_and_multiplier(default_law: Tally) -> None:
    assert len(default_law.diff_covered) == len(default_law.mult_covered) == 3 * REPS
    assert Tally.rate(default_law.diff_covered) >= 0.85
    assert Tally.rate(default_law.mult_covered) >= 0.85


def test_an_effect_above_the_detectable_difference_is_detected() -> None:
    """Less own noise, more seed-shared noise (pairing cancels it): CoE's 0.030 nats at 1e12 exceed the
    minimum detectable difference (0.022 at 3 seeds) and are found about as often as the power says."""
    law = SimulationLaw(noise_std=0.005, seed_noise_std=0.01)
    d = design({"moe_2k": MOE_2K, "coe_2_k": COE_2_K}, law)
    tally = run_scenario(d, baseline="moe_2k", effect_arm="coe_2_k", null_arm=None, seeds=3, reps=REPS,
                         n_boot=50, rng=np.random.default_rng(5))
    assert len(tally.detected) == REPS  # only the 1e12 level's effect is above the MDD
    predicted = float(np.mean(tally.predicted_power))
    assert predicted > 0.8
    assert Tally.rate(tally.detected) >= predicted - 3 * np.sqrt(predicted * (1 - predicted) / REPS)
    assert Tally.rate(tally.diff_covered) >= 0.85
