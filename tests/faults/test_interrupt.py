"""Ctrl-C (SIGINT) or SIGTERM (`docker stop`, `kill`) to the driver mid-sweep: it stops the WHOLE sweep
(not just the running budget), says how to continue, exits 130, leaves no trial RUNNING in MLflow and
no Ray process behind; the relaunch completes the sweep with every trial exactly once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sweep_helpers import (
    launch_cli,
    launch_to_end,
    mlflow_children,
    pids_matching,
    reap,
    wait_while_running,
    write_spec,
)

pytestmark = pytest.mark.slow

TRIALS, FLOPS = 3, [2e10, 6e10]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_sweep_cleanly_and_relaunch_completes(tmp_path: Path, signum: int) -> None:
    import mlflow

    spec = write_spec(tmp_path, "interrupt", trials=TRIALS, flops=FLOPS, max_concurrent=1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = tmp_path / "first.log"
    driver = launch_cli(spec, "--simulate", "--simulate-trial-s", "3", cwd=tmp_path, log=log)
    marker = f"coe-ray-{driver.pid}-"
    try:
        wait_while_running(driver, log, lambda: len(list(tmp_path.glob("sweeps/*/results/*.json"))) >= 1, 240,
                           "a finished trial")
        driver.send_signal(signum)
        rc = driver.wait(timeout=120)
        ray_left = pids_matching(marker)
    finally:
        reap({driver.pid}, marker=marker)
    text = log.read_text()
    assert rc == 130, text[-3000:]
    assert "interrupted" in text and "coe-sweep launch" in text and "Traceback" not in text, text[-3000:]
    assert not ray_left, "the driver shut its local Ray down on the way out"
    records = {p.stem for p in tmp_path.glob("sweeps/*/results/*.json")}
    assert 1 <= len(records) < TRIALS, "stopped mid-sweep: the other budget never started"
    # one slot, budgets interleaved longest trials first: the stop came before any 2e10 trial started
    assert {r.data.params["budget_label"] for r in mlflow_children(uri, "interrupt")} == {"6e10"}
    children = mlflow_children(uri, "interrupt")
    assert not [r for r in children if r.info.status == "RUNNING"], "nothing left RUNNING"
    parent = mlflow.MlflowClient(uri).get_run(children[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED"

    assert launch_to_end(spec, "--simulate", cwd=tmp_path, log=tmp_path / "second.log") == 0, \
        (tmp_path / "second.log").read_text()[-3000:]
    children = mlflow_children(uri, "interrupt")
    hashes = [r.data.tags["coe_sweep.config_hash"] for r in children]
    assert len(hashes) == len(set(hashes)) == TRIALS * len(FLOPS)
    assert all(r.info.status == "FINISHED" and r.data.tags["coe_sweep.status"] == "ok" for r in children)
