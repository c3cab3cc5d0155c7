"""The CoE/MoE law: psi recovered and said in words, the form chosen by held-out error, no iterations term
invented when iterations do nothing."""

from __future__ import annotations

import json

import pytest

from coe_sweep.analysis.coelaw import candidate_forms, fit_coe_law
from coe_sweep.analysis.lawdata import law_data

from .synthetic import CHINCHILLA_THETA, law_frame

BUDGETS = [1e18, 3e18, 1e19, 3e19, 1e20]
ARMS = ((1, 8, 2), (2, 8, 2), (3, 8, 2), (1, 8, 1))


def test_psi_is_recovered_and_said_in_words() -> None:
    frame = law_frame(CHINCHILLA_THETA, BUDGETS, psi=0.4, gamma=0.15, arms=ARMS, noise=0.01, seed=3, off_centre=0.7)
    law = fit_coe_law(law_data(frame), n_boot=100, seed=3)
    assert law.fit.form.chain == "power"
    assert law.psi == pytest.approx(0.4, abs=0.05)
    assert law.psi_ci[0] <= 0.4 <= law.psi_ci[1]  # type: ignore[index]
    (one_two, two_three) = law.worth
    assert (one_two.from_c, one_two.to_c) == (1, 2) and one_two.pct == pytest.approx(100 * (2**0.6 - 1), abs=3)
    assert two_three.pct == pytest.approx(100 * (1.5**0.6 - 1), abs=3)
    assert "going from 1 to 2 iterations is worth as much as" in law.summary and "psi = 0.4" in law.summary
    assert [s.form for s in law.scores if s.chosen] == [law.fit.form.name]
    assert "kept: its held-out error" in law.reason
    assert set(law.fit.arm_knobs) == {"moe", "coe-C2", "coe-C3"}
    json.dumps(law.to_dict(), allow_nan=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_iterations_effect_keeps_no_iterations_term(seed: int) -> None:
    """psi = 1 (an iteration adds nothing) and no sparsity effect: the held-out error keeps the plain form,
    and the power form's psi (reported as not selected) has an interval around 1."""
    frame = law_frame(CHINCHILLA_THETA, BUDGETS, psi=1.0, gamma=0.0, arms=ARMS, noise=0.01, seed=seed, off_centre=0.7)
    law = fit_coe_law(law_data(frame), n_boot=50, seed=seed)
    assert law.fit.form.name == "chinchilla"
    assert law.psi_form == "chain-power+sparsity" and law.psi_ci[0] <= 1.0 <= law.psi_ci[1]  # type: ignore[index]
    assert "did not favour an iterations term" in law.summary


def test_linear_truth_is_told_apart_when_the_data_can() -> None:
    """psi means different things in the two forms; with C up to 4 the held-out error tells them apart."""
    arms = ((1, 8, 2), (2, 8, 2), (3, 8, 2), (4, 8, 2))
    frame = law_frame(CHINCHILLA_THETA, BUDGETS, psi=0.3, chain="linear", arms=arms, noise=0.005, seed=5,
                      off_centre=0.7)
    law = fit_coe_law(law_data(frame), n_boot=50, seed=5)
    assert law.fit.form.name == "chain-linear" and law.psi_form == "chain-power"
    assert "psi is quoted in the power form" in law.summary
    one_two, two_three, three_four = law.worth
    assert one_two.pct == pytest.approx(70.0, abs=2)  # h(2)/h(1) = 1 + 0.7
    assert two_three.pct == pytest.approx(100 * (2.4 / 1.7 - 1), abs=2)
    assert three_four.pct_ci[0] <= 100 * (3.1 / 2.4 - 1) <= three_four.pct_ci[1]  # type: ignore[index]


def test_one_arm_is_refused_as_approach3_again() -> None:
    data = law_data(law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.01, seed=1))
    assert [f.name for f in candidate_forms(data)] == ["chinchilla"]
    with pytest.raises(ValueError, match="would be Approach 3 again"):
        fit_coe_law(data, n_boot=20)


def test_arms_without_iterations_have_no_psi() -> None:
    arms = ((1, 8, 2), (1, 8, 1))  # two MoE sparsities, one C
    law = fit_coe_law(law_data(law_frame(CHINCHILLA_THETA, BUDGETS, gamma=0.2, arms=arms, noise=0.01, seed=1)), n_boot=20)
    assert law.psi is None and law.worth == [] and "do not vary" in law.summary
    assert law.fit.form.sparsity and law.fit.value("gamma") == pytest.approx(0.2, abs=0.05)


def test_lack_of_fit_rarely_fires_on_the_true_form() -> None:
    """False-alarm rate of the per budget x arm residual check when the law is right (10 seeded sweeps;
    20 measured: 1 alarm for the CoE law, 0 for Approach 3 on one arm)."""
    arms = ARMS
    alarms = 0
    for seed in range(10):
        frame = law_frame(CHINCHILLA_THETA, BUDGETS, psi=0.4, gamma=0.1, arms=arms, noise=0.01, seed=seed, off_centre=0.7)
        alarms += bool(fit_coe_law(law_data(frame), n_boot=20, seed=seed).fit.warnings)
    assert alarms <= 2
