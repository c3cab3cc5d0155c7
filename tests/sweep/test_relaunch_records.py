"""A relaunch survives the stored data real life produces (`coe-sweep launch` from the command line): the
corpus of unreadable result records (tests/spec/malformed/records/), a trial whose params_total is NaN in
MLflow, a failure reason with square brackets, a trial journal line that is a JSON array. Each unreadable
thing is skipped or repaired with one line naming it; every trial that can be kept is kept, none is
trained again. And a launch whose tracking server is unreachable exits 2 with one line and leaves nothing
behind."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from sweep_helpers import PYTHON, launch_to_end, mlflow_children, write_spec
from sweep_helpers import test_env as subprocess_env

RECORDS = Path(__file__).resolve().parents[1] / "spec" / "malformed" / "records"
BRACKETS = "RuntimeError: shape [4, 8] vs [/bold] mismatch [/]"


def test_unreachable_tracking_server_one_line_nothing_left_behind(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = write_spec(tmp_path, "down")
    done = subprocess.run([PYTHON, "-m", "coe_sweep.cli", "launch", str(spec), "--simulate", "--tracking-uri",
                           f"http://coe:pw-secret@127.0.0.1:{port}"], env=subprocess_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: MLflow tracking store"), done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "pw-secret" not in done.stderr
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_relaunch_skips_or_repairs_what_it_cannot_read(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "relaunch", trials=3, flops=[2e10], max_concurrent=1)
    assert launch_to_end(spec, "--simulate", cwd=tmp_path, log=tmp_path / "first.log") == 0
    (root,) = (tmp_path / "sweeps").iterdir()
    results = root / "results"
    good = sorted(results.glob("*.json"))
    assert len(good) == 3
    expect = json.loads((RECORDS / "expect.json").read_text())
    for name in expect:
        shutil.copyfile(RECORDS / name, results / f"zz-{name}")
    failed = json.loads(good[0].read_text())  # a failure reason that is also Rich markup
    failed["result"] |= {"status": "failed", "reason": BRACKETS}
    good[0].write_text(json.dumps(failed))
    nan_hash = json.loads(good[1].read_text())["identity"]["config_hash"]  # only in MLflow now, with a NaN metric
    good[1].unlink()
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run,) = [r for r in mlflow_children(uri, "relaunch") if r.data.tags["coe_sweep.config_hash"] == nan_hash]
    mlflow.MlflowClient(uri).log_metric(run.info.run_id, "params_total", math.nan)
    with open(root / "journal.jsonl", "a") as journal:
        journal.write('["start", "not an event"]\n{"event": "start"}\n')
    starts_before = (root / "journal.jsonl").read_text().count('"start"')

    code = launch_to_end(spec, "--simulate", cwd=tmp_path, log=tmp_path / "second.log")
    log = (tmp_path / "second.log").read_text()
    assert code == 1, log[-3000:]  # 1: the sweep ran and has a failed trial (the bracket one)
    assert "Traceback" not in log
    for name, fragment in expect.items():
        lines = [line for line in log.splitlines() if f"zz-{name}" in line]
        assert len(lines) == 1 and "ignoring unreadable result record" in lines[0] and fragment in lines[0], \
            (name, fragment, lines)
    nan_lines = [line for line in log.splitlines() if nan_hash in line and "not finite" in line]
    assert len(nan_lines) == 1 and "params_total=nan" in nan_lines[0]
    assert BRACKETS in log  # printed as text in the failed-trials table, not parsed as markup
    assert (root / "journal.jsonl").read_text().count('"start"') == starts_before  # nothing trained again
    assert len(mlflow_children(uri, "relaunch")) == 3
    for name in expect:  # kept on disk for a human to look at
        assert (results / f"zz-{name}").exists()
