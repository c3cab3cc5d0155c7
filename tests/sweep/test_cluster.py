"""The same spec on an existing multi-process Ray cluster: `ray start --head` + a second worker-node
process on 127.0.0.1 (1 CPU each), a simulated sweep submitted with cluster.address, both stopped by PID."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweep_helpers import RayNode, mlflow_children, write_spec

from coe_sweep.spec import load_spec
from coe_sweep.sweep.driver import launch, sweep_dir

pytestmark = pytest.mark.slow


def _max_overlap(journal: Path) -> int:
    running, peak = 0, 0
    for line in journal.read_text().splitlines():
        event = json.loads(line)["event"]
        running += 1 if event == "start" else -1
        peak = max(peak, running)
    return peak


def test_sweep_on_a_two_node_cluster(tmp_path: Path) -> None:
    head = RayNode(tmp_path, num_cpus=1)
    worker = None
    try:
        worker = RayNode(tmp_path, address=head.address, num_cpus=1)
        spec = load_spec(write_spec(tmp_path, "cluster", trials=4, flops=[4e10], max_concurrent=2,
                                    address=head.address))
        import ray

        out = launch(spec, simulate=True, progress=False, simulate_trial_s=2.0)
        assert out.exit_code == 0 and len(out.budgets["4e10"].ok) == 4
        # two trials ran at once on a cluster whose nodes have one CPU each: both nodes trained
        assert _max_overlap(sweep_dir(spec) / "journal.jsonl") == 2
        assert not ray.is_initialized()  # launch disconnected; the cluster itself is still up
        assert head.pids() and worker.pids()
        assert len(mlflow_children(f"sqlite:///{tmp_path / 'mlflow.db'}", "cluster")) == 4
    finally:
        if worker is not None:
            worker.stop()
        head.stop()
    assert not head.pids() and not worker.pids()
