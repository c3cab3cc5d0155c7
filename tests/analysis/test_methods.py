"""Every method side by side with its audit: per-budget optima, predictions with reach, leave-future-out,
drop-one spread, and the Approach 2 vs 3 disagreement warning."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coe_sweep.analysis import isoflop_profiles
from coe_sweep.analysis.methods import METHOD_NAMES, fit_methods

from .synthetic import CHINCHILLA_THETA, law_frame

BUDGETS = [1e18, 3e18, 1e19, 3e19, 1e20]
ARMS = ((1, 8, 2), (2, 8, 2), (3, 8, 2))


@pytest.fixture(scope="module")
def coe_laws():  # noqa: ANN201
    frame = law_frame(CHINCHILLA_THETA, BUDGETS, psi=0.4, arms=ARMS, noise=0.005, seed=11, off_centre=0.5)
    return fit_methods(frame, isoflop_profiles(frame, n_boot=200), n_boot=50)


def test_all_methods_side_by_side(coe_laws) -> None:  # noqa: ANN001
    assert list(coe_laws.fitted()) == list(METHOD_NAMES) and coe_laws.reasons() == {}
    table = coe_laws.per_budget()
    assert {m: len(rows) for m, rows in table.items()} == dict.fromkeys(METHOD_NAMES, 5)
    assert [o.flops for o in table["approach3"]] == BUDGETS
    for rows in table.values():  # the optimum grows with compute under every method
        assert np.all(np.diff([o.n_opt for o in rows]) > 0) and np.all(np.diff([o.loss_opt for o in rows]) < 0)
    preds = {p.method: p for p in coe_laws.predict(1e21)}
    assert set(preds) == set(METHOD_NAMES)
    for p in preds.values():
        assert p.reach == pytest.approx(10.0) and p.reach_text == "10x beyond the largest trial's FLOPs"
        assert p.n_opt_ci[0] < p.n_opt < p.n_opt_ci[1] and p.loss_opt_ci[0] < p.loss_opt < p.loss_opt_ci[1]
        assert p.audit is not None and p.audit.held_out.startswith("1e+20") and p.audit.reference == "vertex"
        assert p.spread is not None and p.spread.n_refits == 5
        assert p.spread.n_opt_range[0] <= p.spread.n_opt_range[1]
        json.dumps(p.to_dict(), allow_nan=False)
    coe = preds["coe_law"]
    assert coe.arm in ("moe", "coe-C2", "coe-C3") and {a.arm for a in coe.arms} == {"moe", "coe-C2", "coe-C3"}
    assert coe.loss_opt == min(a.loss_opt for a in coe.arms)
    assert abs(coe.audit.n_opt_rel_error) < 0.1 and abs(coe.audit.loss_error) < 0.02  # type: ignore[union-attr]
    (pooled_misfit,) = coe_laws.approach3.warnings  # Approach 3 pools arms that the law tells apart
    assert "lack of fit: the approach3 law (chinchilla) misses" in pooled_misfit and "budget x arm cells'" in pooled_misfit
    assert coe_laws.coe.fit.warnings == []
    assert coe_laws.predict(3e18)[0].reach_text == "within the trials' FLOPs range"
    assert coe_laws.predict(1e17)[0].reach_text == "10x below the smallest trial's FLOPs"
    with pytest.raises(ValueError, match="flops=-1"):
        coe_laws.predict(-1)


def test_leave_future_out_error_is_small_when_the_law_is_right() -> None:
    frame = law_frame(CHINCHILLA_THETA, BUDGETS, noise=0.0, sizes=9)
    laws = fit_methods(frame, isoflop_profiles(frame, n_boot=50), n_boot=20)
    assert "coe_law" in laws.reasons() and "Approach 3 again" in laws.reasons()["coe_law"]
    for method in ("approach2", "approach3"):
        audit = laws.audits[method]
        assert audit is not None and audit.held_out == "1e+20"
        assert abs(audit.n_opt_rel_error) < 0.05 and abs(audit.loss_error) < 0.01, audit


def test_disagreement_warning_when_a_budget_is_sampled_far_from_its_optimum() -> None:
    """The largest budget sampled far above its optimum: Approach 2's parabola leans, Approach 3 (every
    trial through one law) does not; they disagree by > 10% and the answer says so."""
    frame = pd.concat([law_frame(CHINCHILLA_THETA, BUDGETS[:4], noise=0.003, seed=1),
                       law_frame(CHINCHILLA_THETA, BUDGETS[4:], noise=0.003, seed=2, shift=15.0, span=12.0)],
                      ignore_index=True)
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    laws = fit_methods(frame, isoflop_profiles(frame, n_boot=200), n_boot=30)
    (warning,) = [w for w in laws.warnings if "disagree" in w]
    assert "at the largest budget (1e+20 FLOPs)" in warning


def test_few_budgets_limit_the_audit() -> None:
    three = law_frame(CHINCHILLA_THETA, BUDGETS[:3], noise=0.003, seed=1)
    laws = fit_methods(three, isoflop_profiles(three, n_boot=50), n_boot=20)
    assert laws.audits["approach3"] is not None and laws.drop_one == {}
    assert laws.predict(1e20)[0].spread is None
    two = law_frame(CHINCHILLA_THETA, BUDGETS[:2], noise=0.003, seed=1, sizes=9)
    laws = fit_methods(two, isoflop_profiles(two, n_boot=50), n_boot=20)
    assert laws.audits == {} and any("needs >= 3 budget levels" in w for w in laws.warnings)
