"""The JSON API against a real MLflow sqlite store: every endpoint, filters, sorting, paging, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import ARMS_SWEEP, EMPTY_SWEEP, SWEEP
from fastapi.testclient import TestClient

from coe_sweep.analysis import isoflop_profiles
from coe_sweep.analysis.scaling import scaling_fit

OK = "ok"


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == OK]


def assert_422(response, param: str, *needles: str) -> None:  # noqa: ANN001
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(param in e["loc"] for e in errors), errors
    text = " ".join(e["msg"] for e in errors)
    for needle in needles:
        assert needle in text, text


# --- sweeps ---------------------------------------------------------------------------------------
def test_list_sweeps_has_status_and_counts(client: TestClient, frame: pd.DataFrame) -> None:
    body = client.get("/api/sweeps").json()
    by_name = {s["name"]: s for s in body["sweeps"]}
    assert set(by_name) >= {SWEEP, EMPTY_SWEEP}
    sweep = by_name[SWEEP]
    assert sweep["status"] == "FINISHED"
    assert sweep["n_trials"] == len(frame)
    assert sweep["counts"] == frame["status"].value_counts().to_dict()
    assert by_name[EMPTY_SWEEP]["status"] == "RUNNING"


def test_sweep_by_name_and_by_id_agree(client: TestClient, frame: pd.DataFrame) -> None:
    by_name = client.get(f"/api/sweeps/{SWEEP}").json()
    by_id = client.get(f"/api/sweeps/{by_name['id']}").json()
    assert by_name == by_id
    assert [b["budget_label"] for b in by_name["budgets"]] == ["1e12", "3e12", "1e13"]
    ok = ok_rows(frame)
    assert [b["n_ok"] for b in by_name["budgets"]] == [int((ok["budget_label"] == b).sum()) for b in ("1e12", "3e12", "1e13")]
    assert "final_val_loss" in by_name["columns"]


def test_unknown_sweep_is_404_naming_it(client: TestClient) -> None:
    for path in ("", "/trials", "/frontier", "/scaling", "/optimal?flops=1e14", "/pareto", "/compare"):
        response = client.get(f"/api/sweeps/no-such-sweep{path}")
        assert response.status_code == 404, path
        assert "no-such-sweep" in response.json()["detail"]
        assert SWEEP in response.json()["detail"]  # lists the known ones


# --- trials ---------------------------------------------------------------------------------------
def test_trials_filter_by_status_family_budget(client: TestClient, frame: pd.DataFrame) -> None:
    url = f"/api/sweeps/{SWEEP}/trials"
    assert client.get(url, params={"limit": 1000}).json()["total"] == len(frame)
    assert client.get(url, params={"status": "ok"}).json()["total"] == int((frame["status"] == OK).sum())
    both = client.get(url, params=[("status", "diverged"), ("status", "failed")]).json()
    assert both["total"] == int(frame["status"].isin(["diverged", "failed"]).sum()) == 2
    coe = client.get(url, params={"family": "coe", "limit": 1000}).json()
    assert coe["total"] == int((frame["family"] == "coe").sum())
    assert {r["family"] for r in coe["rows"]} == {"coe"}
    by_label = client.get(url, params={"budget": "3e12", "limit": 1000}).json()
    by_flops = client.get(url, params={"budget": "3000000000000", "limit": 1000}).json()
    assert by_label["total"] == by_flops["total"] == int((frame["budget_label"] == "3e12").sum())
    assert {r["run_id"] for r in by_label["rows"]} == {r["run_id"] for r in by_flops["rows"]}


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_trials_sort_any_column_missing_last(client: TestClient, frame: pd.DataFrame, order: str) -> None:
    for column in ("final_val_loss", "params_active", "model.d_model", "budget_label"):
        rows = client.get(f"/api/sweeps/{SWEEP}/trials", params={"sort": column, "order": order, "limit": 1000}).json()["rows"]
        values = [r[column] for r in rows]
        present = [v for v in values if v is not None]
        assert values[:len(present)] == present  # missing values last
        # numbers (including numeric labels such as "3e12") sort numerically
        assert present == sorted(present, key=float, reverse=order == "desc"), column


def test_trials_paging_covers_every_row_once(client: TestClient, frame: pd.DataFrame) -> None:
    seen: list[str] = []
    for offset in range(0, len(frame) + 7, 7):
        page = client.get(f"/api/sweeps/{SWEEP}/trials", params={"limit": 7, "offset": offset, "sort": "run_id"}).json()
        assert page["total"] == len(frame) and page["offset"] == offset
        seen += [r["run_id"] for r in page["rows"]]
    assert seen == sorted(frame["run_id"])


def test_trials_column_selection(client: TestClient) -> None:
    page = client.get(f"/api/sweeps/{SWEEP}/trials", params={"columns": "run_id,final_val_loss", "limit": 3}).json()
    assert page["columns"] == ["run_id", "final_val_loss"]
    assert all(set(r) == {"run_id", "final_val_loss"} for r in page["rows"])


def test_trials_bad_parameters_are_422_naming_them(client: TestClient) -> None:
    url = f"/api/sweeps/{SWEEP}/trials"
    assert_422(client.get(url, params={"sort": "bogus"}), "sort", "bogus", "final_val_loss")
    assert_422(client.get(url, params={"columns": "run_id,nope"}), "columns", "nope")
    assert_422(client.get(url, params={"budget": "7e7"}), "budget", "7e7", "1e12", "3e12", "1e13")
    assert_422(client.get(url, params={"family": "transformer"}), "family")
    assert_422(client.get(url, params={"status": "great"}), "status")
    assert_422(client.get(url, params={"limit": 0}), "limit")
    assert_422(client.get(url, params={"limit": 100000}), "limit")
    assert_422(client.get(url, params={"offset": -1}), "offset")
    assert_422(client.get(url, params={"order": "up"}), "order")


def test_single_trial_with_curves(client: TestClient, frame: pd.DataFrame) -> None:
    run_id = ok_rows(frame)["run_id"].iloc[0]
    detail = client.get(f"/api/sweeps/{SWEEP}/trials/{run_id}").json()
    assert detail["run_id"] == run_id and detail["status"] == OK
    steps = [s for s, _ in detail["curves"]["val_loss"]]
    assert len(steps) >= 1 and steps == sorted(steps)
    assert detail["curves"]["val_loss"][-1][1] == pytest.approx(detail["finals"]["final_val_loss"])
    assert detail["params"]["model.iterations"] in (1, 2)


def test_trial_not_in_sweep_is_404(client: TestClient, frame: pd.DataFrame) -> None:
    assert client.get(f"/api/sweeps/{SWEEP}/trials/{'0' * 32}").status_code == 404
    run_id = frame["run_id"].iloc[0]
    response = client.get(f"/api/sweeps/{EMPTY_SWEEP}/trials/{run_id}")
    assert response.status_code == 404 and run_id in response.json()["detail"]


# --- frontier / scaling / optimal ---------------------------------------------------------------
def test_frontier_matches_analysis_on_the_same_frame(client: TestClient, frame: pd.DataFrame) -> None:
    body = client.get(f"/api/sweeps/{SWEEP}/frontier").json()
    ok = ok_rows(frame)
    ok = ok[np.isfinite(ok["final_val_loss"])]
    expected = isoflop_profiles(ok, x="params_active", n_boot=1000)
    assert [b["budget_label"] for b in body["budgets"]] == [p.budget_label for p in expected]
    for budget, profile in zip(body["budgets"], expected, strict=True):
        assert budget["n_points"] == len(budget["points"]) == int((ok["budget_label"] == profile.budget_label).sum())
        fit = budget["fit"]
        assert fit["convex"] and fit["x_opt"] == pytest.approx(profile.x_opt)
        lo, hi = fit["x_opt_ci"]
        assert lo <= fit["x_opt"] <= hi
        assert len(fit["curve_x"]) == len(fit["curve_loss"]) > 10
        point = budget["points"][0]
        assert {"iterations", "top_k", "n_experts", "n_layers"} <= set(point["config"])


def test_frontier_x_axes_and_family(client: TestClient) -> None:
    tokens = client.get(f"/api/sweeps/{SWEEP}/frontier", params={"x": "tokens"}).json()
    assert tokens["x"] == "tokens"
    coe = client.get(f"/api/sweeps/{SWEEP}/frontier", params={"family": "coe"}).json()
    assert {p["family"] for b in coe["budgets"] for p in b["points"]} == {"coe"}
    assert_422(client.get(f"/api/sweeps/{SWEEP}/frontier", params={"x": "depth"}), "x", "params_active")


def test_scaling_fit_matches_analysis(client: TestClient, frame: pd.DataFrame) -> None:
    body = client.get(f"/api/sweeps/{SWEEP}/scaling").json()
    ok = ok_rows(frame)
    expected = scaling_fit(isoflop_profiles(ok[np.isfinite(ok["final_val_loss"])], n_boot=1000), n_boot=1000)
    law = {law["quantity"]: law for law in body["laws"]}
    assert law["x_opt"]["exponent"] == pytest.approx(expected.x_law.exponent)
    assert law["x_opt"]["exponent"] > 0  # the optimum grows with compute
    assert body["used_budgets"] == ["1e12", "3e12", "1e13"]
    assert [p["budget_flops"] for p in body["points"]] == [1e12, 3e12, 1e13]


def test_scaling_shows_every_method_with_its_audit(client: TestClient) -> None:
    body = client.get(f"/api/sweeps/{SWEEP}/scaling").json()
    methods = {m["method"]: m for m in body["methods"]}
    assert list(methods) == ["approach2", "approach3", "coe_law"]
    for method in methods.values():
        assert method["message"] is None, method
        assert [b["budget_label"] for b in method["per_budget"]] == ["1e12", "3e12", "1e13"]
        assert method["audit"]["held_out"].startswith("1e13") and method["n_exponent"] > 0
    assert {p["name"] for p in methods["approach3"]["params"]} == {"E", "A", "B", "alpha", "beta"}
    law = body["coe_law"]
    assert law["form"] in {s["form"] for s in law["scores"] if s["chosen"]} and law["summary"]
    assert body["flops_per_token"].startswith("FLOPs/token f = k N^")
    assert client.get(f"/api/sweeps/{SWEEP}/scaling", params={"x": "tokens"}).json()["methods"] == body["methods"]


def test_optimal_prediction_and_nearest_config(client: TestClient, frame: pd.DataFrame) -> None:
    body = client.get(f"/api/sweeps/{SWEEP}/optimal", params={"flops": 1e14}).json()
    scaling = {law["quantity"]: law for law in client.get(f"/api/sweeps/{SWEEP}/scaling").json()["laws"]}
    law = scaling["x_opt"]
    assert body["prediction"]["x_opt"] == pytest.approx(law["coefficient"] * 1e14 ** law["exponent"], rel=1e-9)
    assert body["prediction"]["extrapolation_factor"] == pytest.approx(10.0)
    nearest = body["nearest"]
    assert nearest["run_id"] in set(frame["run_id"])
    ok = ok_rows(frame)
    distances = np.abs(np.log(ok["params_active"]) - math.log(body["prediction"]["x_opt"]))
    assert nearest["log_distance"] == pytest.approx(distances.min())
    assert nearest["trainable"]["horizon"]["tokens"] == round(body["prediction"]["tokens_opt"])


def test_optimal_respects_max_memory(client: TestClient, frame: pd.DataFrame) -> None:
    capped = client.get(f"/api/sweeps/{SWEEP}/optimal", params={"flops": 1e14, "max_memory": "20MB"}).json()
    assert capped["max_memory_bytes"] == 20e6
    row = frame[frame["run_id"] == capped["nearest"]["run_id"]].iloc[0]
    assert row["peak_memory_bytes"] <= 20e6
    nothing = client.get(f"/api/sweeps/{SWEEP}/optimal", params={"flops": 1e14, "max_memory": "1KB"})
    assert nothing.status_code == 200
    assert nothing.json()["nearest"] is None and "max_memory" in nothing.json()["message"]


def test_optimal_bad_parameters(client: TestClient) -> None:
    url = f"/api/sweeps/{SWEEP}/optimal"
    assert_422(client.get(url), "flops")
    assert_422(client.get(url, params={"flops": -1}), "flops")
    assert_422(client.get(url, params={"flops": "inf"}), "flops")
    assert_422(client.get(url, params={"flops": 1e14, "max_memory": "lots"}), "max_memory", "lots", "2GB")


# --- Pareto -------------------------------------------------------------------------------------
def brute_force_front(values: np.ndarray) -> set[int]:
    """Independent O(n^2) check: i is on the front unless some j is <= everywhere and < somewhere."""
    front = set()
    for i in range(len(values)):
        dominated = any(np.all(values[j] <= values[i]) and np.any(values[j] < values[i])
                        for j in range(len(values)) if j != i)
        if not dominated:
            front.add(i)
    return front


def test_pareto_front_is_the_non_dominated_set(client: TestClient, frame: pd.DataFrame) -> None:
    body = client.get(f"/api/sweeps/{SWEEP}/pareto",
                      params={"objectives": "final_val_loss:min,peak_memory_bytes:min", "pooled": "true"}).json()
    ok = ok_rows(frame).reset_index(drop=True)
    expected = brute_force_front(ok[["final_val_loss", "peak_memory_bytes"]].to_numpy())
    assert {p["run_id"] for p in body["front"]} == set(ok.loc[sorted(expected), "run_id"])
    assert body["n_considered"] == len(ok)
    losses = [p["values"]["final_val_loss"] for p in body["front"]]
    assert losses == sorted(losses)


def test_pareto_aliases_directions_and_three_objectives(client: TestClient, frame: pd.DataFrame) -> None:
    url = f"/api/sweeps/{SWEEP}/pareto"
    full = client.get(url, params={"objectives": "final_val_loss:min,peak_memory_bytes:min"}).json()
    short = client.get(url, params={"objectives": "val_loss,peak_memory"}).json()
    assert [p["run_id"] for p in full["front"]] == [p["run_id"] for p in short["front"]]
    three = client.get(url, params={"objectives": "val_loss:min,params_total:min,tokens:max", "pooled": "true"}).json()
    ok = ok_rows(frame).reset_index(drop=True)
    values = np.stack([ok["final_val_loss"], ok["params_total"], -ok["tokens"]], axis=1)
    assert {p["run_id"] for p in three["front"]} == set(ok.loc[sorted(brute_force_front(values)), "run_id"])


def test_pareto_filters_and_dominated(client: TestClient, frame: pd.DataFrame) -> None:
    url = f"/api/sweeps/{SWEEP}/pareto"
    body = client.get(url, params={"include_dominated": "true"}).json()
    assert len(body["front"]) + len(body["dominated"]) == len(ok_rows(frame))
    assert not any(p["on_front"] for p in body["dominated"])
    coe = client.get(url, params={"family": "coe", "budget": "1e13"}).json()
    assert coe["n_considered"] == int(((frame["family"] == "coe") & (frame["budget_label"] == "1e13") &
                                       (frame["status"] == OK)).sum())
    assert {(p["family"], p["budget_label"]) for p in coe["front"]} == {("coe", "1e13")}
    capped = client.get(url, params={"max_memory": "10MB", "include_dominated": "true"}).json()
    values = [p["values"]["peak_memory_bytes"] for p in capped["front"] + capped["dominated"]]
    assert values and max(values) <= 10e6


def test_pareto_bad_objectives_are_422_listing_accepted(client: TestClient) -> None:
    url = f"/api/sweeps/{SWEEP}/pareto"
    assert_422(client.get(url, params={"objectives": "happiness:max,val_loss"}), "objectives", "happiness",
               "final_val_loss", "peak_memory_bytes")
    assert_422(client.get(url, params={"objectives": "val_loss"}), "objectives", "2 to 3")
    assert_422(client.get(url, params={"objectives": "val_loss:up,peak_memory"}), "objectives", "'up'", "'min' or 'max'")
    assert_422(client.get(url, params={"objectives": "val_loss,final_val_loss"}), "objectives", "twice")
    assert_422(client.get(url, params={"budget": "1e99"}), "budget", "1e12")


# --- arm comparisons ---------------------------------------------------------------------------
def test_compare_single_seed_sweep_cannot_tell(client: TestClient) -> None:
    """One seed per config: derived arms, best width per arm, and no interval anywhere (it says why)."""
    body = client.get(f"/api/sweeps/{SWEEP}/compare").json()
    assert body["baseline"] == "moe" and body["arms"] == ["moe", "coe-C2"]
    assert [b["budget_label"] for b in body["budgets"]] == ["1e12", "3e12", "1e13"]
    for budget in body["budgets"]:
        base, coe = budget["arms"]
        assert base["diff"] is None and base["n_configs"] == 7 and coe["n_configs"] == 7
        assert coe["diff"]["verdict"] == "not enough seeds" and coe["diff"]["ci"] is None
    assert body["multipliers"] and all(m["ci"] is None for m in body["multipliers"])
    assert all("single seed" in m["warnings"][-1] for m in body["multipliers"])


def test_compare_seeded_arms_is_the_analysis(client: TestClient, tracking_uri: str) -> None:
    """The API's numbers are compare_arms' over the store's frame; verdicts follow their intervals."""
    from coe_sweep.analysis import compare_arms
    from coe_sweep.tracking import TrackingStore

    body = client.get(f"/api/sweeps/{ARMS_SWEEP}/compare").json()
    expected = compare_arms(TrackingStore(tracking_uri).trials_frame(ARMS_SWEEP), "moe")
    assert body["baseline"] == "moe" and body["arms"] == expected.arms == ["moe", "coe-C2", "coe-C3"]
    for got, want in zip(body["budgets"], expected.budgets, strict=True):
        for a, b in zip(got["arms"], want.arms, strict=True):
            assert a["cell"]["seeds"] == [0, 1, 2] and a["summary"]["mean"] == pytest.approx(b.summary.mean)
            if b.diff is None:
                continue
            d = a["diff"]
            assert d["ci"] == pytest.approx(list(b.diff.ci)) and d["p_value"] == pytest.approx(b.diff.p_value)
            assert d["verdict"] == ("better" if d["ci"][1] < 0 else "worse" if d["ci"][0] > 0
                                    else "no detectable difference")
    assert [m["text"] for m in body["multipliers"]] == [m.text for m in expected.multipliers]
    assert body["equal_memory"] and body["equal_wall"] == []  # simulated: no measured wall time
    other = client.get(f"/api/sweeps/{ARMS_SWEEP}/compare", params={"baseline": "coe-C2"}).json()
    assert other["baseline"] == "coe-C2" and other["budgets"][0]["arms"][0]["arm"] == "coe-C2"
    assert_422(client.get(f"/api/sweeps/{ARMS_SWEEP}/compare", params={"baseline": "moe_2k"}), "baseline",
               "baseline='moe_2k'", "moe, coe-C2, coe-C3")


# --- empty answers ------------------------------------------------------------------------------
@pytest.mark.parametrize("path,lists", [
    ("/frontier", ["budgets"]), ("/scaling", ["points", "laws"]), ("/optimal?flops=1e14", []),
    ("/pareto", ["front", "dominated"]), ("/compare", ["budgets", "multipliers", "arms"]),
])
def test_no_finished_trials_is_an_empty_answer(client: TestClient, path: str, lists: list[str]) -> None:
    response = client.get(f"/api/sweeps/{EMPTY_SWEEP}{path}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "no finished trials" in body["message"]
    for key in lists:
        assert body[key] == []


def test_empty_sweep_still_lists_its_running_trial(client: TestClient) -> None:
    body = client.get(f"/api/sweeps/{EMPTY_SWEEP}/trials").json()
    assert body["total"] == 1 and body["rows"][0]["status"] == "running"


# --- read-only, docs ----------------------------------------------------------------------------
def test_read_only_and_documented(client: TestClient) -> None:
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)(f"/api/sweeps/{SWEEP}").status_code == 405
    spec = client.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        assert set(item) == {"get"}, path
    assert {"/api/sweeps", "/api/sweeps/{sweep}/pareto", "/api/sweeps/{sweep}/optimal"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
