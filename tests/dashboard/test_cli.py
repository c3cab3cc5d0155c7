"""`coe-sweep pareto` and `coe-sweep optimal`: same answers as the API, exit codes for bad input."""

from __future__ import annotations

import json

import pytest
from conftest import SWEEP
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


@pytest.mark.parametrize("argv,needle", [
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
