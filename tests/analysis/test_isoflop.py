"""IsoFLOP profiles on synthetic parabolas with a known vertex."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coe_sweep.analysis import IsoFlopWarning, isoflop_profiles

from .synthetic import parabola_rows

X_OPT, LOSS_OPT = 1e5, 2.0


def _frame(xs: np.ndarray, noise: float = 0.0, seed: int = 0, curvature: float = 0.05) -> pd.DataFrame:
    return pd.DataFrame(parabola_rows("1e13", 1e13, xs, X_OPT, LOSS_OPT, curvature=curvature, noise=noise,
                                      rng=np.random.default_rng(seed)))


def test_noise_free_vertex_is_exact() -> None:
    (p,) = isoflop_profiles(_frame(np.geomspace(X_OPT / 8, X_OPT * 8, 7)), n_boot=50)
    assert p.x_opt == pytest.approx(X_OPT, rel=1e-6)
    assert p.loss_opt == pytest.approx(LOSS_OPT, abs=1e-9)
    A, B, Cc = p.coef  # type: ignore[misc]
    # loss = 0.05 (L - ln x*)^2 + 2  ->  A = 0.05, B = -0.1 ln x*, C = 0.05 ln(x*)^2 + 2
    assert (A, B, Cc) == pytest.approx((0.05, -0.1 * np.log(X_OPT), 0.05 * np.log(X_OPT) ** 2 + 2), rel=1e-6)
    assert p.warnings == []
    assert p.tokens_opt == pytest.approx(1e13 / (6 * X_OPT), rel=1e-6)  # tokens = C / 6x at the vertex


def test_noisy_vertex_recovered_and_covered_by_the_interval() -> None:
    (p,) = isoflop_profiles(_frame(np.geomspace(X_OPT / 8, X_OPT * 8, 11), noise=0.005, seed=1), seed=0)
    assert abs(np.log(p.x_opt / X_OPT)) < 0.1  # type: ignore[operator]
    lo, hi = p.x_opt_ci  # type: ignore[misc]
    assert lo < X_OPT < hi and lo < p.x_opt < hi
    lo_l, hi_l = p.loss_opt_ci  # type: ignore[misc]
    assert lo_l < LOSS_OPT < hi_l
    assert p.boot_convex_fraction == 1.0 and p.n_boot_valid == p.n_boot == 1000
    assert p.warnings == []


def test_interval_coverage_over_noise_draws() -> None:
    """The 90% percentile interval covers the true vertex in most of 40 independent noisy sweeps."""
    covered = 0
    for seed in range(40):
        (p,) = isoflop_profiles(_frame(np.geomspace(X_OPT / 8, X_OPT * 8, 11), noise=0.01, seed=seed),
                                n_boot=300, ci=0.9, seed=seed)
        lo, hi = p.x_opt_ci  # type: ignore[misc]
        covered += lo <= X_OPT <= hi
    assert covered >= 30  # nominal 36/40; the bootstrap percentile interval runs a little narrow


def test_bootstrap_is_seeded_and_per_budget() -> None:
    df = _frame(np.geomspace(X_OPT / 8, X_OPT * 8, 9), noise=0.01)
    (a,), (b,), (c,) = (isoflop_profiles(df, n_boot=200, seed=s) for s in (7, 7, 8))
    assert a.x_opt_ci == b.x_opt_ci and a.x_opt_ci != c.x_opt_ci
    other = df.assign(budget_label="1e14", budget_flops=1e14, run_id=df.run_id + "b")
    both = isoflop_profiles(pd.concat([df, other]), n_boot=200, seed=7)
    assert both[0].x_opt_ci == a.x_opt_ci  # adding a budget does not change another's interval


def test_edge_of_range_warning() -> None:
    (p,) = isoflop_profiles(_frame(np.geomspace(X_OPT / 64, X_OPT / 2, 7)), n_boot=50)
    assert IsoFlopWarning.EDGE_OF_RANGE in p.warnings
    assert IsoFlopWarning.LOPSIDED in p.warnings  # nothing sampled above the vertex
    assert p.x_opt > p.x_max  # type: ignore[operator]
    assert any("outside the sampled range" in n for n in p.notes)


def test_lopsided_warning_without_edge() -> None:
    xs = X_OPT * np.array([0.25, 1.2, 1.5, 2, 3, 5, 8])  # one distinct x below the vertex
    (p,) = isoflop_profiles(_frame(xs), n_boot=50)
    assert p.warnings == [IsoFlopWarning.LOPSIDED]
    assert p.best_x == pytest.approx(1.2 * X_OPT)
    (q,) = isoflop_profiles(_frame(xs), n_boot=50, min_side_points=1)
    assert q.warnings == []


def test_too_few_points() -> None:
    (p,) = isoflop_profiles(_frame(X_OPT * np.array([0.5, 1.0, 2.0])), n_boot=50)
    assert IsoFlopWarning.TOO_FEW_POINTS in p.warnings
    assert p.x_opt == pytest.approx(X_OPT, rel=1e-6)  # 3 distinct x: still fitted (exactly)
    (q,) = isoflop_profiles(_frame(X_OPT * np.array([0.5, 0.5, 2.0, 2.0, 2.0])), n_boot=50)
    assert q.warnings == [IsoFlopWarning.TOO_FEW_POINTS]
    assert q.x_opt is None and q.coef is None and not q.ok
    assert q.n_points == 5 and q.n_distinct_x == 2


def test_not_convex() -> None:
    (p,) = isoflop_profiles(_frame(np.geomspace(X_OPT / 8, X_OPT * 8, 7), curvature=-0.05), n_boot=50)
    assert IsoFlopWarning.NOT_CONVEX in p.warnings
    assert IsoFlopWarning.BOOTSTRAP_UNSTABLE in p.warnings  # no refit is convex either
    assert p.x_opt is None and p.boot_convex_fraction == 0.0
    assert len(p.curve_x) == len(p.curve_loss) == 64  # the fitted curve is still drawn


def test_robust_fit_ignores_an_outlier() -> None:
    df = _frame(np.geomspace(X_OPT / 8, X_OPT * 8, 9), noise=0.005, seed=1)
    df.loc[3, "final_val_loss"] += 0.5  # one bad trial
    (robust,) = isoflop_profiles(df, n_boot=100)
    (ols,) = isoflop_profiles(df, n_boot=100, robust_loss="linear")
    assert abs(np.log(robust.x_opt / X_OPT)) < 0.05  # type: ignore[operator]
    assert abs(np.log(ols.x_opt / X_OPT)) > 0.3  # type: ignore[operator]


def test_nan_and_failed_rows_are_excluded_and_counted() -> None:
    df = _frame(np.geomspace(X_OPT / 8, X_OPT * 8, 9))
    df.loc[0, "final_val_loss"] = np.nan
    df.loc[1, "params_active"] = np.nan
    df.loc[2, "status"] = "diverged"
    (p,) = isoflop_profiles(df, n_boot=50)
    assert p.n_points == 6 and p.n_excluded_nan == 2
    assert "run2" not in {pt["run_id"] for pt in p.points}
    assert p.x_opt == pytest.approx(X_OPT, rel=1e-6)


def test_to_dict_is_json_with_curve_and_points() -> None:
    (p,) = isoflop_profiles(_frame(np.geomspace(X_OPT / 64, X_OPT / 2, 7)), n_boot=50)
    d = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    assert d["warnings"] == ["edge_of_range", "lopsided"]
    assert len(d["curve_x"]) == 64 and len(d["points"]) == 7
    assert d["points"][0]["run_id"] == "run0" and d["points"][0]["x"] == pytest.approx(X_OPT / 64)
    assert "boot_log_x_opt" not in d


def test_x_axes_and_string_params() -> None:
    df = _frame(np.geomspace(X_OPT / 8, X_OPT * 8, 9))
    (by_tokens,) = isoflop_profiles(df, x="tokens", n_boot=50)
    assert by_tokens.x_name == "tokens"
    assert by_tokens.x_opt == pytest.approx(1e13 / (6 * X_OPT), rel=1e-6)  # loss is a parabola in ln(tokens) too
    df["model.iterations"] = [str(v) for v in [1, 1, 2, 2, 3, 3, 4, 4, 4]]  # MLflow params are strings
    (by_iter,) = isoflop_profiles(df, x="iterations", n_boot=50)
    assert by_iter.x_name == "model.iterations" and by_iter.n_distinct_x == 4


def test_bad_arguments_are_named() -> None:
    df = _frame(np.geomspace(X_OPT / 8, X_OPT * 8, 9))
    with pytest.raises(ValueError, match="x='params'.*params_active"):
        isoflop_profiles(df, x="params")
    with pytest.raises(ValueError, match="families=\\['mixture'\\]"):
        isoflop_profiles(df, families=["mixture"])
    with pytest.raises(ValueError, match="ci=1.5"):
        isoflop_profiles(df, ci=1.5)
    assert isoflop_profiles(df.assign(status="failed")) == []


def test_linear_loss_bootstrap_has_width() -> None:
    """Fix: with robust_loss='linear' every bootstrap refit started (and stayed) at the point fit: zero-width CIs."""
    (p,) = isoflop_profiles(_frame(np.geomspace(X_OPT / 8, X_OPT * 8, 11), noise=0.01, seed=2), n_boot=200,
                            robust_loss="linear")
    lo, hi = p.x_opt_ci  # type: ignore[misc]
    assert hi / lo > 1.05 and lo < X_OPT < hi
    lo_l, hi_l = p.loss_opt_ci  # type: ignore[misc]
    assert hi_l - lo_l > 1e-3
