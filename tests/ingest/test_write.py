"""`coe-sweep import` into a real MLflow store: the runs become a sweep tagged imported, a second import of the
same file completes instead of duplicating, a clashing name is refused before writing, and `optimal`, the
scaling API and the other endpoints work on the imported sweep (CLI and API give the same answer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from analysis.synthetic import CHINCHILLA_THETA, law_frame  # tests/analysis (tests/ is on sys.path)
from fastapi.testclient import TestClient

from coe_sweep.cli import main
from coe_sweep.tracking import TrackingStore
from dashboard import create_app
from dashboard.settings import Settings

SWEEP = "imported-coe"
BUDGETS = [1e18, 3e18, 1e19, 3e19]
MAP = ["--map", "params=N", "--map", "tokens=D", "--map", "loss=val loss", "--map", "iterations=C",
       "--map", "flops_per_token=FLOPs/token", "--map", "n_experts=E", "--map", "top_k=K"]


def _table(tmp: Path) -> Path:
    frame = law_frame(CHINCHILLA_THETA, BUDGETS, psi=0.4, arms=((1, 8, 2), (2, 8, 2), (3, 8, 2)), noise=0.005, seed=3,
                      sizes=5, off_centre=0.5)
    table = pd.DataFrame({"N": frame["params_active"], "D": frame["tokens"], "val loss": frame["final_val_loss"],
                          "C": frame["model.iterations"].astype(int), "FLOPs/token": frame["train_flops_per_token"],
                          "E": 8, "K": 2})
    path = tmp / "runs.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("import")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    path = _table(tmp)
    assert main(["import", str(path), "--sweep", SWEEP, *MAP, "--tracking-uri", uri]) == 0
    yield uri, path


def test_runs_become_a_sweep_tagged_imported(imported: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    uri, path = imported
    store = TrackingStore(uri)
    (summary,) = store.list_sweeps()
    assert summary.name == SWEEP and summary.counts == {"ok": 60}
    parent = mlflow.MlflowClient(uri).get_run(summary.id)
    assert parent.data.tags["coe_sweep.imported"] == "true"
    frame = store.trials_frame(SWEEP)
    assert sorted(frame["budget_label"].unique()) == ["1e+18", "1e+19", "3e+18", "3e+19"]
    assert set(frame["model.iterations"]) == {1, 2, 3} and set(frame["seed"]) == {0}
    source = pd.read_csv(path)
    assert sorted(frame["final_val_loss"]) == pytest.approx(sorted(source["val loss"]))
    assert sorted(frame["train_flops_per_token"]) == pytest.approx(sorted(source["FLOPs/token"]))
    assert "sha256" in store.spec_yaml(SWEEP) and "runs.csv" in store.spec_yaml(SWEEP)
    # the same import again completes instead of duplicating; another file under the name is refused
    capsys.readouterr()
    assert main(["import", str(path), "--sweep", SWEEP, *MAP, "--tracking-uri", uri]) == 0
    assert "0 run(s) written, 60 already there" in capsys.readouterr().out
    other = path.with_name("other.csv")
    pd.read_csv(path).iloc[:20].to_csv(other, index=False)
    assert main(["import", str(other), "--sweep", SWEEP, *MAP, "--tracking-uri", uri]) == 2
    assert "already has a sweep of this name" in capsys.readouterr().err
    assert store.sweep(SWEEP).n_trials == 60 and len(store.list_sweeps()) == 1


def test_optimal_and_the_scaling_api_on_the_imported_sweep(imported: tuple[str, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    uri, _ = imported
    capsys.readouterr()
    assert main(["optimal", SWEEP, "--flops", "3e20", "--json", "--tracking-uri", uri]) == 0
    cli = json.loads(capsys.readouterr().out)
    with TestClient(create_app(TrackingStore(uri), Settings(tracking_uri=uri, cache_ttl_s=60.0))) as client:
        api = client.get(f"/api/sweeps/{SWEEP}/optimal", params={"flops": 3e20}).json()
        scaling = client.get(f"/api/sweeps/{SWEEP}/scaling").json()
        for path in ("", "/frontier", "/compare", "/pareto", "/trials"):
            assert client.get(f"/api/sweeps/{SWEEP}{path}").status_code == 200, path
        assert client.get(f"/sweeps/{SWEEP}").status_code == 200
    assert cli["methods"] == api["methods"] and cli["prediction"] == api["prediction"]
    assert [m["method"] for m in api["methods"]] == ["approach2", "approach3", "coe_law"]
    assert all(m["reach_text"] == "10x beyond the largest trial's FLOPs" for m in api["methods"])
    assert {m["method"]: m["message"] for m in scaling["methods"]} == dict.fromkeys(
        ["approach2", "approach3", "coe_law"])
    law = scaling["coe_law"]
    assert law["psi"] == pytest.approx(0.4, abs=0.05) and "worth as much as" in law["summary"]
    assert scaling["flops_per_token"].startswith("FLOPs/token f = k N^1.000 fitted to the trials' accounting")
