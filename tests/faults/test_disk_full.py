"""The sweep directory's disk fills up mid-sweep: a clear message (no traceback), exit 1, nothing lost.

The disk is real: a 16 MiB tmpfs mounted for the test and filled to the last byte while trials run.
Mounting needs root with CAP_SYS_ADMIN (CI and these machines have it); elsewhere the test is skipped
and says why. The unwritable-path case (nothing started, exit 2) is in tests/sweep/test_cli_launch.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
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

pytestmark = pytest.mark.slow

TRIALS, FLOPS = 3, [2e10, 6e10]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write until the filesystem refuses: the disk is full."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    return filler


def _records(disk: Path) -> dict[str, float]:
    return {p.stem: p.stat().st_mtime_ns for p in disk.glob("*/results/*.json")}


def test_disk_full_mid_sweep_stops_cleanly_and_relaunch_completes(tmp_path: Path, small_disk: Path) -> None:
    spec = write_spec(tmp_path, "diskfull", trials=TRIALS, flops=FLOPS, max_concurrent=1,
                      extra={"cluster.storage_path": str(small_disk)})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = tmp_path / "first.log"
    driver = launch_cli(spec, "--simulate", "--simulate-trial-s", "3", cwd=tmp_path, log=log)
    try:
        wait_while_running(driver, log, lambda: _records(small_disk), 240, "a finished trial's result record")
        filler = _fill(small_disk)
        rc = driver.wait(timeout=300)
    finally:
        reap({driver.pid}, marker=f"coe-ray-{driver.pid}-")
    text = log.read_text()
    assert rc == 1, text[-3000:]
    assert "Traceback" not in text, text[-5000:]
    assert "No space left on device" in text and "coe-sweep launch" in text, text[-3000:]
    before = _records(small_disk)
    assert 1 <= len(before) < TRIALS * len(FLOPS), "the fault should land mid-sweep"
    finished = [r for r in mlflow_children(uri, "diskfull") if r.info.status == "FINISHED"]
    assert {record_name(r) for r in finished} >= set(before), "every record is in MLflow"
    assert not any(r.info.status == "RUNNING" for r in mlflow_children(uri, "diskfull")), \
        "a trial cut short by the stop is marked, not left RUNNING"

    filler.unlink()
    rc = launch_to_end(spec, "--simulate", cwd=tmp_path, log=tmp_path / "second.log")
    assert rc == 0, (tmp_path / "second.log").read_text()[-3000:]
    after = _records(small_disk)
    assert {h: after[h] for h in before} == before, "no trial finished before the fault was trained again"
    children = mlflow_children(uri, "diskfull")
    hashes = [r.data.tags["coe_sweep.config_hash"] for r in children]
    assert len(hashes) == len(set(hashes)) == TRIALS * len(FLOPS)
    assert all(r.info.status == "FINISHED" and r.data.tags["coe_sweep.status"] == "ok" for r in children)
    for run in children:  # a trial whose record could not be written reached MLflow whole
        rec = small_disk.glob(f"*/results/{record_name(run)}.json")
        for path in rec:
            result = json.loads(path.read_text())["result"]
            assert run.data.metrics["final_val_loss"] == pytest.approx(result["final_val_loss"], rel=1e-9)
