"""The researcher-view endpoints on real MLflow sqlite stores: the session's simulated sweep (conftest) and
a variant sweep with named arms and measured routing statistics (viewsgen), built once per module."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import viewsgen
from conftest import ARMS_SWEEP, SWEEP
from conftest import _key as conftest_key
from fastapi.testclient import TestClient

from coe_sweep.tracking import TrackingStore
from dashboard import create_app
from dashboard.settings import Settings


@pytest.fixture(scope="module")
def cached_variant(request: pytest.FixtureRequest) -> Path:
    return viewsgen.cached_db(Path(request.config.cache.mkdir("coe-sweep-views")), conftest_key())


@pytest.fixture(scope="module")
def variant_uri(cached_variant: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    cached = cached_variant
    root = tmp_path_factory.mktemp("variant")
    shutil.copy(cached, root / "mlflow.db")
    return f"sqlite:///{root / 'mlflow.db'}"


@pytest.fixture(scope="module")
def variant(variant_uri: str) -> Iterator[TestClient]:
    with TestClient(create_app(TrackingStore(variant_uri), Settings(tracking_uri=variant_uri, cache_ttl_s=60.0))) as c:
        yield c


def get(client: TestClient, path: str, status: int = 200) -> dict:
    response = client.get(path)
    assert response.status_code == status, response.text
    return response.json()


def test_fields_name_the_arms_and_every_varying_field(variant: TestClient) -> None:
    body = get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/fields")
    assert body["arms"] == list(viewsgen.ARMS)
    assert {"model.iterations", "model.top_k", "model.router_mode"} <= set(body["varying"])
    assert "train.seed" not in body["varying"] and "model.n_experts" not in body["varying"]  # seed has its own column
    assert body["table"][:3] == ["trial_id", "arm", "seed"] and "model.router_mode" in body["table"]
    assert body["budgets"] == ["1e12", "3e12"]


def test_aggregate_by_config_collapses_seeds(variant: TestClient, variant_uri: str) -> None:
    body = get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/aggregate")
    assert body["by"] == "config" and len(body["rows"]) == len(viewsgen.ARMS) * len(viewsgen.BUDGETS)
    frame = TrackingStore(variant_uri).trials_frame(viewsgen.VARIANT_SWEEP)
    for row in body["rows"]:
        seeds = frame[(frame.config_hash == row["config_hash"]) & (frame.budget_label == row["budget_label"])]
        assert row["n"] == viewsgen.SEEDS == len(seeds)
        assert row["final_val_loss.mean"] == pytest.approx(seeds.final_val_loss.mean())
        assert row["final_val_loss.std"] == pytest.approx(seeds.final_val_loss.std(ddof=1))
        assert row["arm"] in viewsgen.ARMS
    means = [r["final_val_loss.mean"] for r in body["rows"]]
    assert means == sorted(means)


def test_csv_and_parquet_exports_honour_the_filters(client: TestClient, frame: pd.DataFrame) -> None:
    csv = client.get(f"/api/sweeps/{SWEEP}/trials.csv", params={"budget": "3e12", "status": "ok"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert 'filename="synthetic-trials.csv"' in csv.headers["content-disposition"]
    table = pd.read_csv(io.StringIO(csv.text))
    expected = frame[(frame.budget_label == "3e12") & (frame.status == "ok")]
    assert sorted(table.run_id) == sorted(expected.run_id) and len(table) == 14
    assert list(table.final_val_loss) == sorted(table.final_val_loss)  # the table's default sort
    parquet = client.get(f"/api/sweeps/{SWEEP}/trials.parquet", params={"family": "coe", "columns": "trial_id,final_val_loss"})
    assert parquet.status_code == 200
    read = pd.read_parquet(io.BytesIO(parquet.content))
    assert list(read.columns) == ["trial_id", "final_val_loss"]
    assert len(read) == int((frame["model.iterations"].astype(int) > 1).sum())
    by_config = pd.read_csv(io.StringIO(client.get(f"/api/sweeps/{SWEEP}/trials.csv", params={"by": "config"}).text))
    assert "final_val_loss.mean" in by_config.columns and (by_config.n >= 1).all()
    bad = client.get(f"/api/sweeps/{SWEEP}/trials.csv", params={"sort": "nope"})
    assert bad.status_code == 422 and "sort='nope'" in bad.text


def test_history_has_best_so_far_per_budget(client: TestClient, frame: pd.DataFrame) -> None:
    body = get(client, f"/api/sweeps/{SWEEP}/history")
    assert [b["budget_label"] for b in body["budgets"]] == ["1e12", "3e12", "1e13"]
    for budget in body["budgets"]:
        values = [p["value"] for p in budget["points"]]
        best = [p["best"] for p in budget["points"]]
        running = [min(v for v in values[:i + 1] if v is not None) if any(v is not None for v in values[:i + 1]) else None
                   for i in range(len(values))]
        assert best == running and [p["order"] for p in budget["points"]] == list(range(1, len(values) + 1))
    assert get(client, f"/api/sweeps/{SWEEP}/history?objective=bogus", 422)["detail"][0]["msg"].startswith("objective=")


def test_importance_through_optuna_ranks_the_varying_fields(client: TestClient) -> None:
    body = get(client, f"/api/sweeps/{SWEEP}/importance")
    assert body["evaluator"] == "ped-anova" and len(body["budgets"]) == 3
    for budget in body["budgets"]:
        assert budget["message"] is None, budget
        assert budget["n_trials"] >= 14
        assert {"model.d_model", "model.iterations"} <= set(budget["importances"])
        assert sum(budget["importances"].values()) == pytest.approx(1.0)
    fanova = get(client, f"/api/sweeps/{SWEEP}/importance?evaluator=fanova")
    assert all(sum(b["importances"].values()) == pytest.approx(1.0) for b in fanova["budgets"])
    arms = get(client, f"/api/sweeps/{ARMS_SWEEP}/importance")  # 3 arms x 3 seeds per budget: just enough
    assert [(b["n_trials"], b["message"]) for b in arms["budgets"]] == [(9, None)] * 3
    assert all({"model.iterations", "model.top_k"} <= set(b["importances"]) for b in arms["budgets"])


def test_importance_says_when_there_are_too_few_trials(variant: TestClient) -> None:
    body = get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/importance")
    assert [b["message"] for b in body["budgets"]] == [
        f"too few finished trials for importance: 6 at budget {label}, need at least 8" for label, _ in viewsgen.BUDGETS]


def test_routing_per_arm_is_the_mean_of_its_trials(variant: TestClient, variant_uri: str) -> None:
    body = get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/routing")
    assert [a["arm"] for a in body["arms"]] == list(viewsgen.ARMS)
    frame = TrackingStore(variant_uri).trials_frame(viewsgen.VARIANT_SWEEP)
    coe = next(a for a in body["arms"] if a["arm"] == "coe_2_k")
    assert coe["n_trials"] == 4 and coe["n_layers"] == 2 and coe["n_iterations"] == 2
    rows = frame[frame.arm == "coe_2_k"]
    assert coe["stats"]["entropy"]["mean"][1][0] == pytest.approx(rows["routing.L1.C0.entropy"].mean())
    assert coe["stats"]["entropy"]["sd"][1][0] == pytest.approx(rows["routing.L1.C0.entropy"].std(ddof=1))
    assert coe["stats"]["overlap_next"]["n"] == [[4, 0], [4, 0]]  # no t+1 after the last iteration
    profile = coe["load_profile"][0][0]
    assert len(profile) == 8 and profile == sorted(profile, reverse=True)
    assert np.mean(profile) == pytest.approx(1.0)  # loads over the mean average to one
    moe = next(a for a in body["arms"] if a["arm"] == "moe_2k")
    assert moe["n_iterations"] == 1 and "overlap_next" not in moe["stats"]
    empty = get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/routing?family=dense")
    assert empty["arms"] == []


def test_routing_says_simulated_trials_log_none(client: TestClient) -> None:
    body = get(client, f"/api/sweeps/{SWEEP}/routing")
    assert body["arms"] == [] and "simulated trials" in body["message"]


def test_trial_view_by_trial_id(variant: TestClient, variant_uri: str) -> None:
    frame = TrackingStore(variant_uri).trials_frame(viewsgen.VARIANT_SWEEP)
    row = frame[frame.arm == "coe_shared_router"].iloc[0]
    body = get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/trials/{row.trial_id}/view")
    assert (body["trial_id"], body["arm"], body["seed"], body["run_id"]) == (row.trial_id, row.arm, row.seed, row.run_id)
    assert body["config_hash"] == row.config_hash and body["budget_label"] == row.budget_label
    assert body["config"]["model.router_mode"] == "shared" and "train.lr" in body["config"]
    val = body["curves"]["val_loss"]
    assert val and all(t == s * 8 * 64 for s, t, _ in val)  # tokens = step x batch x seq_len
    assert body["memory"]["estimated_bytes"] == pytest.approx(row.estimated_memory_bytes)
    assert body["memory"]["allocated_after_step_bytes"] == pytest.approx(row.allocated_after_step_bytes)
    assert body["memory"]["ratio"] == pytest.approx(row.peak_memory_bytes / row.estimated_memory_bytes)
    routing = body["routing"]
    assert routing["n_layers"] == 2 and len(routing["loads"][0][0]) == 8
    assert routing["grids"]["overlap_next"][0][0] == pytest.approx(row["routing.L0.C0.overlap_next"])
    assert not any(k.startswith("routing.") for k in body["finals"])
    assert body["mlflow_url"].startswith("http://127.0.0.1:5000/#/experiments/") and body["mlflow_url"].endswith(row.run_id)
    assert "mlflow ui --backend-store-uri" in body["mlflow_hint"]
    by_run = get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/trials/{row.run_id}/view")
    assert by_run["trial_id"] == row.trial_id
    assert get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/trials/{row.trial_id}")["run_id"] == row.run_id  # one id
    missing = get(variant, f"/api/sweeps/{viewsgen.VARIANT_SWEEP}/trials/deadbeef-s9/view", 404)
    assert "deadbeef-s9" in missing["detail"]


def test_curves_carry_the_fields_to_colour_by(client: TestClient, frame: pd.DataFrame) -> None:
    body = get(client, f"/api/sweeps/{SWEEP}/curves?budget=1e12")
    expected = frame[frame.budget_label == "1e12"]
    assert body["total"] == len(expected) and len(body["curves"]) == len(expected)
    assert body["curves"][0]["status"] == "running"  # live trials first
    finished = [c for c in body["curves"] if c["status"] == "ok"]
    assert finished and all(c["points"]["val_loss"] and "model.d_model" in c["fields"] for c in finished)
    assert all(c["tokens_per_step"] == 8 * 64 for c in finished)
    limited = get(client, f"/api/sweeps/{SWEEP}/curves?limit=3")
    assert len(limited["curves"]) == 3 and "showing 3 of" in limited["message"]


def test_pages_serve(variant: TestClient) -> None:
    page = variant.get(f"/sweeps/{viewsgen.VARIANT_SWEEP}/trials/abc-s0")
    assert page.status_code == 200 and "/static/trial.js" in page.text
    assert variant.get("/compare-sweeps?a=x&b=y").status_code == 200
    for script in ("views.js", "trial.js", "sweeps-compare.js"):
        assert variant.get(f"/static/{script}").status_code == 200
    assert variant.get("/sweeps/nope/trials/abc-s0").status_code == 404


def test_curves_of_a_running_trial_grow_live(cached_variant: Path, tmp_path: Path) -> None:
    """A trial still running: its intermediate metrics (log_progress) are in MLflow and /curves follows them."""
    from coe_sweep.tracking import SweepTracker

    shutil.copy(cached_variant, tmp_path / "mlflow.db")  # a migrated database: saves MLflow's ~8 s of schema set-up
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "live", "name: live\n", "spec-live", journal_dir=str(tmp_path / "journal"))
    tracker.start()
    arm, p = next(viewsgen.plans())
    run_id = tracker.start_trial(p.config_hash, p.flat_params(), seed=p.seed)
    tracker.log_progress(run_id, 10, {"train_loss": 3.0})
    with TestClient(create_app(TrackingStore(uri), Settings(tracking_uri=uri, cache_ttl_s=0.0))) as live:
        first = get(live, "/api/sweeps/live/curves")["curves"]
        assert [(c["trial_id"], c["status"], c["points"]["train_loss"]) for c in first] == [(p.trial_id, "running", [[10.0, 3.0]])]
        tracker.log_progress(run_id, 20, {"train_loss": 2.5, "val_loss": 2.6})
        later = get(live, "/api/sweeps/live/curves")["curves"][0]["points"]
        assert later == {"train_loss": [[10.0, 3.0], [20.0, 2.5]], "val_loss": [[20.0, 2.6]]}
    tracker.finish("FINISHED")
