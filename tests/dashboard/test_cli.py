"""`coe-sweep pareto`, `optimal` and `compare`: same answers as the API, exit codes for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ARMS_SWEEP, SWEEP
from fastapi.testclient import TestClient

from coe_sweep.cli import main


def test_pareto_json_equals_the_api(client: TestClient, tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pareto", SWEEP, "--objectives", "val_loss,peak_memory", "--json", "--tracking-uri", tracking_uri])
    assert code == 0
    cli = json.loads(capsys.readouterr().out)
    api = client.get(f"/api/sweeps/{SWEEP}/pareto", params={"objectives": "final_val_loss:min,peak_memory_bytes:min"}).json()
    assert [p["run_id"] for p in cli["front"]] == [p["run_id"] for p in api["front"]]
    assert cli["objectives"] == api["objectives"]


def test_pareto_table(tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pareto", SWEEP, "--tracking-uri", tracking_uri, "--family", "coe"]) == 0
    out = capsys.readouterr().out
    assert "Pareto set of synthetic" in out and "non-dominated of" in out and "moe" not in out.split("\n", 3)[3]


def test_optimal_json_equals_the_api(client: TestClient, tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["optimal", SWEEP, "--flops", "1e14", "--max-memory", "20MB", "--json", "--tracking-uri", tracking_uri])
    assert code == 0
    cli = json.loads(capsys.readouterr().out)
    api = client.get(f"/api/sweeps/{SWEEP}/optimal", params={"flops": 1e14, "max_memory": "20MB"}).json()
    assert cli["prediction"] == api["prediction"]
    assert cli["nearest"]["run_id"] == api["nearest"]["run_id"]
    assert cli["methods"] == api["methods"] and cli["method_warnings"] == api["method_warnings"]
    assert [m["method"] for m in api["methods"]] == ["approach2", "approach3", "coe_law"]


def test_optimal_table(tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimal", SWEEP, "--flops", "3e13", "--tracking-uri", tracking_uri]) == 0
    out = capsys.readouterr().out
    assert "Predicted optimum" in out and "Nearest trainable config" in out and "tokens to train" in out
    assert "every method" in out and "Extrapolation audit" in out
    for method in ("approach2", "approach3", "coe_law"):
        assert method in out


def test_compare_json_and_table_equal_the_api(client: TestClient, tracking_uri: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    api = client.get(f"/api/sweeps/{ARMS_SWEEP}/compare").json()
    assert main(["compare", ARMS_SWEEP, "--json", "--tracking-uri", tracking_uri]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in cli.items() if k != "data_version"} == {k: v for k, v in api.items() if k != "data_version"}
    assert main(["compare", ARMS_SWEEP, "--tracking-uri", tracking_uri]) == 0
    out = capsys.readouterr().out
    for budget in api["budgets"]:
        for arm in budget["arms"][1:]:
            assert f"{budget['budget_label']} {arm['arm']}: {arm['diff']['text']}" in out
    for m in api["multipliers"]:
        assert m["text"] in out
    assert "every arm against moe" in out and "Compute multipliers" in out and "Equal measured peak memory" in out


def test_compare_baseline_defaults_to_the_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep whose logged spec says `analysis: {baseline: coe-C2}` is compared against coe-C2 unless asked."""
    import sweepgen

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plans = list(sweepgen.seeded_arms(budgets=(("1e12", 1e12),), arms=((1, 4), (2, 2)), seeds=2))
    sweepgen.seed_sweep(uri, "spec-baseline", plans, journal_dir=str(tmp_path / "journal"), extra_failures=False,
                        running=0, spec_yaml="name: spec-baseline\nanalysis: {baseline: coe-C2}\n")
    assert main(["compare", "spec-baseline", "--json", "--tracking-uri", uri]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] == "coe-C2"
    assert main(["compare", "spec-baseline", "--json", "--baseline", "moe", "--tracking-uri", uri]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] == "moe"


@pytest.mark.parametrize("argv,needle", [
    (["compare", ARMS_SWEEP, "--baseline", "moe_2k"], "baseline='moe_2k' is not an arm"),
    (["pareto", SWEEP, "--objectives", "val_loss,happiness"], "'happiness' is unknown"),
    (["pareto", SWEEP, "--budget", "7e7"], "budget='7e7' is invalid"),
    (["pareto", "no-such-sweep"], "no-such-sweep"),
    (["optimal", SWEEP, "--flops", "-5"], "--flops=-5.0 is invalid"),
    (["optimal", SWEEP, "--flops", "1e14", "--max-memory", "lots"], "max_memory='lots' is invalid"),
])
def test_bad_input_exits_2_naming_it(tracking_uri: str, capsys: pytest.CaptureFixture[str], argv: list[str],
                                     needle: str) -> None:
    assert main([*argv, "--tracking-uri", tracking_uri]) == 2
    assert needle in capsys.readouterr().err


def test_dashboard_bad_port_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--port", "0", "--tracking-uri", "sqlite:///x.db"]) == 2
    assert "--port=0" in capsys.readouterr().err
