"""`coe-sweep launch` / `status` from the command line: bad input refused before anything starts, and a
REAL (training) 4-trial sweep on a local Ray that the command starts and stops itself."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest
from sweep_helpers import TINY_MODEL, mlflow_children, pids_matching, write_spec

from coe_sweep.cli import main


def test_spec_error_exits_2_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_spec(tmp_path, "bad", extra={"search": {"algorithm": "annealing"}})
    assert main(["launch", str(path), "--simulate"]) == 2
    err = capsys.readouterr().err
    assert "search.algorithm" in err and "annealing" in err
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()


def test_bad_override_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_spec(tmp_path, "ovr")
    assert main(["launch", str(path), "--set", "search.trials_per_budget=-3", "--simulate"]) == 2
    assert "trials_per_budget" in capsys.readouterr().err


def test_unwritable_storage_exits_2_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the storage directory should go")
    path = write_spec(tmp_path, "store", extra={"cluster": {"storage_path": str(blocker / "sweeps"),
                                                            "max_concurrent": 1}})
    start = time.monotonic()
    assert main(["launch", str(path), "--simulate"]) == 2
    err = capsys.readouterr().err
    assert "cluster.storage_path" in err and "Traceback" not in err
    assert time.monotonic() - start < 30
    assert not (tmp_path / "mlflow.db").exists()  # refused before the tracker was touched


def test_unreachable_tracking_server_exits_2_fast(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_spec(tmp_path, "track")
    start = time.monotonic()
    code = main(["launch", str(path), "--simulate", "--tracking-uri", f"http://127.0.0.1:{port}"])
    assert code == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "Traceback" not in err


@pytest.mark.slow
def test_real_four_trial_sweep_on_local_ray(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Real training (tiny MoE/CoE models, CPU), local Ray started and stopped by the command; stderr is
    not a terminal here, so progress comes as plain lines (one per second with COE_SWEEP_PROGRESS_S=1)."""
    monkeypatch.setenv("COE_SWEEP_PROGRESS_S", "1")
    path = write_spec(tmp_path, "real", algorithm="grid", trials=None, flops=[3e9], max_concurrent=2,
                      space={"iterations": {"choice": [1, 2]}, "top_k": {"choice": [1, 2]}},
                      train={"eval_interval": 10},
                      extra={"model": {**TINY_MODEL, "d_model": 32}})
    code = main(["launch", str(path)])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out
    lines = [line for line in captured.err.splitlines() if line.startswith("sweep real: 3e9 ")]
    assert lines, captured.err[-3000:]
    assert "/4" in lines[-1] and "ETA" in lines[-1] and "\x1b[" not in captured.err  # plain text, no redraws
    assert "3e9 4/4" in lines[-1] and "running" not in lines[-1], lines[-1]  # the last line: all done, none running
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert f"coe-sweep dashboard --tracking-uri {uri}" in out and f"mlflow ui --backend-store-uri {uri}" in out
    children = mlflow_children(uri, "real")
    assert len(children) == 4
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["coe_sweep.simulated"] == "false"
        m = run.data.metrics
        assert 0 < m["final_val_loss"] < 6 and m["steps"] >= 1 and m["wall_s"] > 0 and m["peak_memory_bytes"] > 0
        assert abs(m["train_flops"] - 3e9) <= 0.01 * 3e9  # whole steps: within a step of the budget
    assert {r.data.tags["coe_sweep.family"] for r in children} == {"moe", "coe"}
    # the best-config table names the best trial by its id and arm, as the log, page and MLflow do
    best = min(children, key=lambda r: r.data.metrics["final_val_loss"])
    best_row = [line for line in out.splitlines() if line.startswith("│ 3e9")][-1]
    assert best.info.run_name in best_row and best.data.tags["coe_sweep.arm"] in best_row, best_row
    efficiency = re.search(r"sweep efficiency (\d\.\d\d): (\d+) busy slot-seconds / \(2 slot\(s\) x (\d+) s", out)
    assert efficiency, out  # the sweep's own efficiency, start-up included
    assert 0 < float(efficiency.group(1)) <= 1 and int(efficiency.group(2)) <= 2 * int(efficiency.group(3)) + 1
    # the local Ray the command started is gone (its temp dir is named after this process)
    assert not pids_matching(f"coe-ray-{os.getpid()}-")
