"""A worker node of a multi-process local Ray cluster is killed mid-trial: the trial is retried on the
other node (FailureConfig) or recorded failed; the sweep completes and every trial is in MLflow once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweep_helpers import RayNode, launch_cli, mlflow_children, reap, wait_for, write_spec

pytestmark = pytest.mark.slow


def _trial_node(nodes: list[RayNode]) -> RayNode | None:
    """The node whose process group holds a running trial actor (`ray::ImplicitFunc...`)."""
    for node in nodes:
        for pid in node.pids():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("ray::ImplicitFunc"):
                return node
    return None


def test_worker_node_killed_mid_trial(tmp_path: Path) -> None:
    head = RayNode(tmp_path, num_cpus=0)  # trials can only run on the worker nodes
    workers: list[RayNode] = []
    driver = None
    try:
        workers = [RayNode(tmp_path, address=head.address, num_cpus=1) for _ in range(2)]
        spec = write_spec(tmp_path, "nodekill", trials=3, flops=[4e10], max_concurrent=1, address=head.address)
        driver = launch_cli(spec, "--simulate", "--simulate-trial-s", "8", cwd=tmp_path, log=tmp_path / "launch.log")
        journal = wait_for(lambda: next((tmp_path / "sweeps").glob("*/journal.jsonl"), None), 240,
                           "the first trial's start", interval_s=0.2)
        victim = wait_for(lambda: _trial_node(workers), 60, "a trial actor on a worker node", interval_s=0.2)
        first = json.loads(journal.read_text().splitlines()[0])
        victim.stop()  # SIGKILL the whole node (raylet, agents, the trial's worker process)
        rc = driver.wait(timeout=400)
    finally:
        if driver is not None:
            reap({driver.pid})
        for node in [*workers, head]:
            node.stop()
    log = (tmp_path / "launch.log").read_text()
    assert rc in (0, 1), log[-3000:]
    children = mlflow_children(f"sqlite:///{tmp_path / 'mlflow.db'}", "nodekill")
    hashes = [r.data.tags["coe_sweep.config_hash"] for r in children]
    assert len(hashes) == len(set(hashes)) == 3
    interrupted = next(r for r in children if r.data.tags["coe_sweep.config_hash"] == first["config_hash"])
    if rc == 0:  # retried on the surviving node
        assert interrupted.info.status == "FINISHED"
    else:  # or recorded failed with the reason
        assert interrupted.info.status == "FAILED" and interrupted.data.tags["coe_sweep.reason"]
    assert all(r.info.status in ("FINISHED", "FAILED") for r in children)
