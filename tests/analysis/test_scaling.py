"""Scaling laws on synthetic sweeps with known exponents; prediction; nearest trainable config."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from coe_sweep.analysis import NotEnoughData, isoflop_profiles, nearest_config, scaling_fit
from coe_sweep.analysis.scaling import Prediction
from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import DataConfig, RunSpec, TrainConfig

from .synthetic import scaling_frame

BUDGETS = [1e13, 3e13, 1e14, 3e14, 1e15]


def x_true(c: float) -> float:
    return 2.0 * c**0.5  # x*(C) = 2 C^0.5  -> tokens* = C / (6 x*) = C^0.5 / 12


def loss_true(c: float) -> float:
    return 1.5 + 40.0 * c**-0.15  # with an irreducible term


@pytest.fixture(scope="module")
def profiles() -> list:
    return isoflop_profiles(scaling_frame(BUDGETS, x_true, loss_true, noise=0.005, seed=1), seed=0)


def test_power_law_exponent_and_coefficient_recovered(profiles: list) -> None:
    fit = scaling_fit(profiles)
    assert fit.budgets_flops == BUDGETS and fit.skipped == {}
    assert fit.x_law.exponent == pytest.approx(0.5, abs=0.02)
    lo, hi = fit.x_law.exponent_ci  # type: ignore[misc]
    assert lo < 0.5 < hi and hi - lo < 0.05
    clo, chi = fit.x_law.coef_ci  # type: ignore[misc]
    assert clo < 2.0 < chi
    assert fit.tokens_law is not None
    assert fit.tokens_law.exponent == pytest.approx(0.5, abs=0.02)
    tlo, thi = fit.tokens_law.coef_ci  # type: ignore[misc]
    assert tlo < 1 / 12 < thi


def test_predict_at_a_new_budget(profiles: list) -> None:
    fit = scaling_fit(profiles, loss_law="irreducible")
    pred = fit.predict(1e16)
    assert pred.x_opt == pytest.approx(x_true(1e16), rel=0.1)
    assert pred.x_opt_ci[0] < x_true(1e16) < pred.x_opt_ci[1]  # type: ignore[index]
    assert pred.tokens_opt == pytest.approx(1e16**0.5 / 12, rel=0.1)
    assert pred.tokens_opt_ci[0] < 1e16**0.5 / 12 < pred.tokens_opt_ci[1]  # type: ignore[index]
    assert pred.loss_opt == pytest.approx(loss_true(1e16), abs=0.01)
    assert pred.loss_opt_ci[0] < loss_true(1e16) < pred.loss_opt_ci[1]  # type: ignore[index]
    assert fit.loss_law.E_ci[0] < 1.5 < fit.loss_law.E_ci[1]  # type: ignore[index]
    assert pred.extrapolation_factor == pytest.approx(10.0)
    assert any("extrapolating 10x" in w for w in pred.warnings)
    inside = fit.predict(1e14)
    assert inside.extrapolation_factor == 1.0 and inside.warnings == []
    json.dumps(pred.to_dict(), allow_nan=False)
    json.dumps(fit.to_dict(), allow_nan=False)


def test_pure_power_loss_law() -> None:
    df = scaling_frame(BUDGETS, x_true, lambda c: 5.0 * c**-0.05, noise=0.002, seed=2)
    profiles = isoflop_profiles(df, n_boot=300)
    fit = scaling_fit(profiles, loss_law="power")
    assert fit.loss_law.kind == "power" and fit.loss_law.E == 0.0
    assert fit.loss_law.alpha == pytest.approx(0.05, abs=0.003)
    lo, hi = fit.loss_law.alpha_ci  # type: ignore[misc]
    assert lo < 0.05 < hi
    assert fit.predict(1e16).loss_opt == pytest.approx(5.0 * 1e16**-0.05, rel=0.01)
    auto = scaling_fit(profiles, n_boot=300)  # the irreducible form finds E near 0 on a pure power law
    assert auto.loss_law.kind == "irreducible" and auto.loss_law.E < 0.3
    assert auto.predict(1e16).loss_opt == pytest.approx(5.0 * 1e16**-0.05, rel=0.01)


def test_too_few_budgets_and_skips() -> None:
    df = scaling_frame([1e13], x_true, loss_true, noise=0.0, seed=0)
    with pytest.raises(NotEnoughData, match="needs >= 2 budgets"):
        scaling_fit(isoflop_profiles(df, n_boot=20))
    two = isoflop_profiles(scaling_frame([1e13, 1e14], x_true, loss_true, noise=0.0, seed=0), n_boot=20)
    fit = scaling_fit(two, loss_law="irreducible")
    assert fit.loss_law.kind == "power"  # fell back, and says so
    assert any("needs >= 3 budgets" in w for w in fit.warnings)
    assert fit.x_law.exponent == pytest.approx(0.5, rel=1e-6)  # exact through two noise-free vertices
    edge = scaling_frame([1e13, 1e14, 1e15], x_true, loss_true, noise=0.0, seed=0)
    edge = edge[~((edge.budget_label == "1e+15") & (edge.params_active > x_true(1e15)))]  # only below x*
    profiles = isoflop_profiles(edge, n_boot=20)
    kept = scaling_fit(profiles)
    assert len(kept.budgets_flops) == 3 and any("1e+15: edge_of_range" in w for w in kept.warnings)
    strict = scaling_fit(profiles, exclude_warnings=("edge_of_range",))
    assert strict.budget_labels == ["1e+13", "1e+14"] and "1e+15" in strict.skipped


def test_predict_rejects_bad_flops(profiles: list) -> None:
    fit = scaling_fit(profiles, n_boot=50)
    for bad in (0, -1e15, float("nan"), "1e15"):
        with pytest.raises(ValueError, match="flops="):
            fit.predict(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="loss_law='chinchilla'"):
        scaling_fit(profiles, loss_law="chinchilla")


def _config_frame() -> pd.DataFrame:
    """Five architectures (strings, like MLflow params) sampled at two budgets each."""
    rows = []
    archs = [(1, 2, 2, 64), (2, 1, 2, 96), (1, 4, 3, 128), (3, 2, 4, 128), (2, 2, 4, 192)]
    for budget in (1e13, 1e14):
        for i, (iters, k, layers, d) in enumerate(archs):
            cfg = ModelConfig(iterations=iters, top_k=k, n_layers=layers, d_model=d)
            params = {f"model.{f}": str(v) for f, v in asdict(cfg).items()}
            params.update({f"train.{f}": str(v) for f, v in asdict(TrainConfig()).items()})
            params.update({f"data.{f}": str(v) for f, v in asdict(DataConfig()).items()})
            x = 1e5 * 2.0**i  # params_active: 1e5, 2e5, 4e5, 8e5, 1.6e6
            rows.append({"run_id": f"r{budget:.0e}-{i}", "status": "ok", "budget_label": f"{budget:.0e}",
                         "budget_flops": budget, "family": "coe" if iters > 1 else "moe",
                         "params_active": x, "final_val_loss": 2.0 - 0.1 * i + (budget < 5e13),
                         "peak_memory_bytes": 1e6 * (i + 1), "estimated_memory_bytes": 1.1e6 * (i + 1),
                         "model.extra_removed_field": "1", **params})
    return pd.DataFrame(rows)


def _prediction(x_opt: float, tokens: float | None = 123456.7) -> Prediction:
    return Prediction(flops=1e16, x_name="params_active", x_opt=x_opt, x_opt_ci=None, tokens_opt=tokens,
                      tokens_opt_ci=None, loss_opt=1.0, loss_opt_ci=None, ci=0.95, extrapolation_factor=1.0)


def test_nearest_config_is_trainable() -> None:
    df = _config_frame()
    near = nearest_config(df, _prediction(3.5e5))  # ln-nearest of 1e5..1.6e6 is 4e5 (index 2)
    assert near.x == 4e5 and near.log_distance == pytest.approx(np.log(4e5 / 3.5e5))
    assert near.budget_label == "1e+14" and near.run_id == "r1e+14-2"  # the largest budget wins a tie
    assert near.family == {"family": "moe", "model.iterations": 1, "model.top_k": 4, "model.n_experts": 16,
                           "model.n_layers": 3, "model.d_model": 128, "model.d_expert": 64}
    assert [a["x"] for a in near.alternatives] == [2e5, 8e5, 1e5, 1.6e6]  # by log distance
    assert near.dropped_params == ["model.extra_removed_field"]
    spec = RunSpec.from_dict(near.trainable)
    assert spec.model == ModelConfig(iterations=1, top_k=4, n_layers=3, d_model=128)
    assert spec.train == TrainConfig() and spec.data == DataConfig()
    assert spec.horizon.tokens == 123457
    json.dumps(near.to_dict(), allow_nan=False)
    assert RunSpec.from_dict(nearest_config(df, _prediction(3.5e5, tokens=None)).trainable).horizon.flops == 1e16


def test_nearest_config_memory_cap_and_filters() -> None:
    df = _config_frame()
    capped = nearest_config(df, _prediction(3.5e5), max_memory=2.5e6)  # peak 3e6 excludes index 2
    assert capped.x == 2e5 and capped.n_excluded_memory == 6  # indices 2, 3, 4 at both budgets
    est = nearest_config(df, _prediction(3.5e5), max_memory=2.1e6)  # estimated 2.2e6 excludes index 1
    assert est.x == 1e5
    coe_only = nearest_config(df, _prediction(3.5e5), families=["coe"])
    assert coe_only.family["family"] == "coe" and coe_only.x == 2e5
    with pytest.raises(NotEnoughData, match="max_memory"):
        nearest_config(df, _prediction(3.5e5), max_memory=10.0)
    with pytest.raises(ValueError, match="max_memory=-1"):
        nearest_config(df, _prediction(3.5e5), max_memory=-1)


def test_default_loss_law_has_the_irreducible_term_and_flags_lack_of_fit() -> None:
    """Fix: the default was a pure power law: on losses with an irreducible floor it missed most budgets'
    own intervals and served overconfident, too-low losses far out. Now: the irreducible form with >= 3
    budgets, and a lack-of-fit warning when a law misses the budgets' own intervals."""
    budgets = [1e13, 3e13, 1e14, 3e14, 1e15, 3e15]
    profiles = isoflop_profiles(scaling_frame(budgets, x_true, loss_true, noise=0.003, seed=4), n_boot=400)
    fit = scaling_fit(profiles, n_boot=400)
    assert fit.loss_law.kind == "irreducible"
    assert not any("lack of fit" in w for w in fit.warnings)
    far = fit.predict(3e17)  # 100x beyond the largest budget
    assert far.loss_opt_ci[0] <= loss_true(3e17) <= far.loss_opt_ci[1]  # type: ignore[index]
    power = scaling_fit(profiles, loss_law="power", n_boot=400)
    (warning,) = [w for w in power.warnings if "lack of fit" in w]
    assert "the power loss law misses" in warning and "of 6 budgets' own 95% intervals" in warning
    too_low = power.predict(3e17)
    assert too_low.loss_opt_ci[1] < loss_true(3e17)  # type: ignore[index]  # what the old default served


def test_lack_of_fit_rate_on_simulated_sweeps() -> None:
    """Over 40 seeded sweeps from a law with an irreducible floor (noise sd 0.003 nats): the correct form
    rarely warns, the pure power law (the wrong form) is flagged in most."""
    budgets = [1e13, 3e13, 1e14, 3e14, 1e15]
    false_alarms = detections = 0
    for seed in range(40):
        profiles = isoflop_profiles(scaling_frame(budgets, x_true, loss_true, noise=0.003, seed=100 + seed),
                                    n_boot=200, seed=seed)
        false_alarms += any("lack of fit" in w for w in scaling_fit(profiles, n_boot=200, seed=seed).warnings)
        detections += any("lack of fit" in w for w in
                          scaling_fit(profiles, loss_law="power", n_boot=200, seed=seed).warnings)
    assert false_alarms <= 4 and detections >= 30, (false_alarms, detections)  # measured: 0 and 40 of 40
