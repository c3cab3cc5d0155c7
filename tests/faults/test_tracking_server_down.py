"""The MLflow server goes away in the middle of a sweep: nothing is lost, nothing is trained twice.

Whole-sweep versions of the tracking-level test (tests/tracking/test_server.py): a real `mlflow server`
process on 127.0.0.1, a real `coe-sweep launch` driver with local Ray, simulated trials (the fault is in
tracking, not in training).

- restarted mid-sweep: writes made while it was down are journaled and replayed by the same driver;
- still down when the sweep ends: the driver says so and exits 1, the journal and the result records
  keep everything, and the relaunch sends it to MLflow without retraining a single trial.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sweep_helpers import (
    launch_cli,
    launch_to_end,
    mlflow_children,
    reap,
    record_name,
    wait_while_running,
    write_spec,
)

from tests.tracking.conftest import MlflowServer, free_port

pytestmark = pytest.mark.slow

TRIALS, FLOPS = 3, [2e10, 6e10]
EXPECTED = TRIALS * len(FLOPS)


def _records(tmp: Path) -> dict[str, dict]:
    """The driver's result records (written before any MLflow call), by config hash."""
    return {p.stem: json.loads(p.read_text()) for p in tmp.glob("sweeps/*/results/*.json")}


def _finished_in_mlflow(uri: str, name: str) -> int:
    return sum(r.info.status == "FINISHED" for r in mlflow_children(uri, name))


def _assert_mlflow_matches_records(uri: str, name: str, records: dict[str, dict], expected: int = EXPECTED) -> None:
    """Every trial exactly once in MLflow, FINISHED, with the final loss and the curve of its result record."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    children = mlflow_children(uri, name)
    hashes = [r.data.tags["coe_sweep.config_hash"] for r in children]
    assert len(hashes) == len(set(hashes)) == expected, sorted(hashes)
    assert {record_name(r) for r in children} == set(records)
    for run in children:
        result = records[record_name(run)]["result"]
        assert run.info.status == "FINISHED" and run.data.tags["coe_sweep.status"] == "ok"
        assert run.data.metrics["final_val_loss"] == pytest.approx(result["final_val_loss"], rel=1e-9)
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_loss"))
        assert logged == sorted((int(s), pytest.approx(v, rel=1e-9)) for s, v in result["val_curve"])


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "mlflow-server"
    root.mkdir()
    srv = MlflowServer(root, free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _launch_then_stop_server(tmp: Path, server: MlflowServer, name: str, trial_s: float = 2.0,
                             trials: int = TRIALS) -> tuple[Path, subprocess.Popen, Path]:
    """A simulated sweep tracked by `server`, which is stopped once one trial is in MLflow."""
    spec = write_spec(tmp, name, trials=trials, flops=FLOPS, max_concurrent=1, extra={"tracking": {"uri": server.uri}})
    log = tmp / "first.log"
    driver = launch_cli(spec, "--simulate", "--simulate-trial-s", str(trial_s), cwd=tmp, log=log)
    try:
        wait_while_running(driver, log, lambda: _finished_in_mlflow(server.uri, name) >= 1, 240,
                           "a finished trial in MLflow")
    except BaseException:
        reap({driver.pid}, marker=f"coe-ray-{driver.pid}-")
        raise
    server.stop()
    return spec, driver, log


def test_server_restarted_mid_sweep_every_trial_reaches_mlflow_once(tmp_path: Path, server: MlflowServer) -> None:
    # 8 trials of 10 s: the 5+ trials left after the stop outlast the server's restart (12 s on a quiet
    # machine, up to 40 s measured on a loaded one); the driver gives up on MLflow only at the very end
    trials = 4
    spec, driver, log = _launch_then_stop_server(tmp_path, server, "srv-restart", trial_s=10.0, trials=trials)
    try:
        down_at = len(_records(tmp_path))
        wait_while_running(driver, log, lambda: len(_records(tmp_path)) >= down_at + 1, 240,
                           "a trial finished while MLflow is down")
        assert driver.poll() is None, "the sweep must go on while tracking is down"
        server.start()
        rc = driver.wait(timeout=400)
    finally:
        reap({driver.pid}, marker=f"coe-ray-{driver.pid}-")
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "could not reach" not in text  # the same driver replayed everything: no warning
    records = _records(tmp_path)
    assert len(records) == trials * len(FLOPS) and all(r["result"]["status"] == "ok" for r in records.values())
    _assert_mlflow_matches_records(server.uri, "srv-restart", records, expected=trials * len(FLOPS))
    journal = next(tmp_path.glob("sweeps/*/tracking-journal"))
    assert not any(p.stat().st_size for p in journal.glob("*")), "the journal is empty once replayed"


def test_server_down_at_the_end_relaunch_relogs_without_retraining(tmp_path: Path, server: MlflowServer) -> None:
    spec, driver, log = _launch_then_stop_server(tmp_path, server, "srv-down")
    try:
        rc = driver.wait(timeout=400)  # the whole rest of the sweep runs with MLflow down
    finally:
        reap({driver.pid}, marker=f"coe-ray-{driver.pid}-")
    text = log.read_text()
    assert rc == 1, text[-3000:]  # every trial ok, but not everything is in MLflow yet: not a silent success
    assert "could not reach" in text and "coe-sweep launch" in text, text[-3000:]
    records = _records(tmp_path)
    assert len(records) == EXPECTED and all(r["result"]["status"] == "ok" for r in records.values())
    trained = {p.stem: p.stat().st_mtime_ns for p in tmp_path.glob("sweeps/*/results/*.json")}

    server.start()
    assert len(mlflow_children(server.uri, "srv-down")) < EXPECTED or any(
        r.info.status != "FINISHED" for r in mlflow_children(server.uri, "srv-down")), "the fault must have bitten"
    rc = launch_to_end(spec, "--simulate", cwd=tmp_path, log=tmp_path / "second.log")
    assert rc == 0, (tmp_path / "second.log").read_text()[-3000:]
    after = {p.stem: p.stat().st_mtime_ns for p in tmp_path.glob("sweeps/*/results/*.json")}
    assert after == trained, "no trial was trained again"
    _assert_mlflow_matches_records(server.uri, "srv-down", records)
