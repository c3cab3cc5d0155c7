"""Compute multipliers on synthetic frontiers whose answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from coe_sweep.analysis.arms import Cell
from coe_sweep.analysis.multiplier import compute_multipliers, fit_frontiers

LEVELS = (1e12, 3e12, 1e13)


def frontier(flops: float, E: float = 0.9, k: float = 0.5, beta: float = 0.7) -> float:  # noqa: N803
    return E + k * (flops / 1e12) ** -beta


def arm_cells(arm: str, loss_at, rng: np.random.Generator | None = None, sd: float = 0.0,  # noqa: ANN001
              seeds: int = 3, levels: tuple[float, ...] = LEVELS) -> list[Cell]:
    out = []
    for flops in levels:
        noise = rng.normal(0.0, sd, seeds) if rng is not None else np.zeros(seeds)
        out.append(Cell(arm, f"{flops:.0e}", flops, f"{arm}-{flops:.0e}", tuple(range(seeds)),
                        tuple(float(v) for v in loss_at(flops) + noise), None, None, None, {}))
    return out


def test_fit_recovers_a_known_frontier() -> None:
    flops = np.array([1e12, 3e12, 1e13, 3e13])
    y = np.array([frontier(c) for c in flops])
    fit = fit_frontiers(flops, y[None, :], np.ones(4))
    assert fit.E[0] == pytest.approx(0.9, abs=1e-4) and fit.beta[0] == pytest.approx(0.7, rel=1e-3)
    assert fit.loss(2e12)[0] == pytest.approx(frontier(2e12), abs=1e-5)
    assert fit.flops_for(frontier(5e12))[0] == pytest.approx(5e12, rel=1e-3)
    assert fit.flops_for(0.85)[0] == np.inf  # below the floor: never


def test_multiplier_of_a_compute_shifted_arm_is_the_shift() -> None:
    """The arm at C has exactly the loss the baseline has at 1.5 C: multiplier 1.5 at every level."""
    frontiers, multipliers, notes = compute_multipliers(
        {"moe": arm_cells("moe", frontier), "coe": arm_cells("coe", lambda c: frontier(1.5 * c))}, "moe")
    assert notes == [] and [f.arm for f in frontiers] == ["moe", "coe"]
    assert [m.flops for m in multipliers] == list(LEVELS)
    for m in multipliers:
        assert m.multiplier == pytest.approx(1.5, rel=2e-3)
        assert m.baseline_flops == pytest.approx(1.5 * m.flops, rel=2e-3)
        assert m.ci is not None and m.ci[0] == pytest.approx(1.5, rel=2e-3)  # no noise: a point interval
    assert [m.extrapolated for m in multipliers] == [False, False, True]  # 1.5e13 > the swept 1e13
    assert "outside its swept budgets" in multipliers[-1].warnings[0]
    assert multipliers[1].text == ("coe reaches at 3e+12 FLOPs the loss moe reaches at 4.5e+12: "
                                   "multiplier 1.50 (95% CI 1.50-1.50)")


def test_noisy_seeds_give_an_interval_around_the_truth() -> None:
    rng = np.random.default_rng(0)
    _, multipliers, _ = compute_multipliers(
        {"moe": arm_cells("moe", frontier, rng, 0.005), "coe": arm_cells("coe", lambda c: frontier(0.7 * c), rng, 0.005)},
        "moe", n_boot=500)
    for m in multipliers:
        assert m.ci is not None and m.ci[1] is not None
        assert m.ci[0] < 0.7 < m.ci[1] and m.ci[1] - m.ci[0] > 0.01  # an arm that needs more compute: < 1
        assert m.n_boot == 500


def test_what_cannot_be_answered_is_said() -> None:
    # one seed per config: a multiplier but no interval
    _, single, _ = compute_multipliers({"moe": arm_cells("moe", frontier, seeds=1),
                                        "coe": arm_cells("coe", lambda c: frontier(2 * c), seeds=1)}, "moe")
    assert single[0].ci is None and "single seed" in single[0].warnings[0]
    # an arm below the baseline's floor: the baseline never gets there
    _, below, _ = compute_multipliers({"moe": arm_cells("moe", frontier),
                                       "coe": arm_cells("coe", lambda c: frontier(c, E=0.5))}, "moe")
    assert below[-1].multiplier is None and "never reaches" in below[-1].text
    # two levels only: no frontier; a flat arm: no falling frontier, so no multiplier
    frontiers, none, notes = compute_multipliers({"moe": arm_cells("moe", frontier, levels=LEVELS[:2]),
                                                  "coe": arm_cells("coe", frontier)}, "moe")
    assert none == [] and any("2 budget level(s)" in n for n in notes)
    frontiers, _, _ = compute_multipliers({"moe": arm_cells("moe", lambda c: 1.0)}, "moe")
    assert not frontiers[0].ok and "does not fall" in frontiers[0].notes[0]
    # losses that fall too slowly for a floor >= 0 (the free fit's floor is -0.2): E is held at 0 and said so
    frontiers, _, _ = compute_multipliers({"moe": arm_cells("moe", lambda c: frontier(c, E=-0.2, k=1.2, beta=0.3))},
                                          "moe")
    assert frontiers[0].E == 0.0 and "held at 0" in frontiers[0].notes[0]
