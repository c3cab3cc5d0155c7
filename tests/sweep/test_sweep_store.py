"""The sweep directory: probe-write, the launch lock, atomic result records, the trial journal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coe_sweep.sweep.store import StorageError, SweepStore
from coe_sweep.trial import FinishedTrial, RunResult, TrialIdentity


def test_unwritable_storage_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cluster.storage_path") as info:
        SweepStore.open(blocker / "sweep")
    assert str(blocker / "sweep") in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_read_only_storage_is_a_clear_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="Permission denied"):
            SweepStore.open(ro / "sweep")
    finally:
        ro.chmod(0o700)


def test_second_holder_is_refused_across_processes(tmp_path: Path) -> None:
    store = SweepStore.open(tmp_path)
    store.acquire()
    code = ("import sys; from coe_sweep.sweep.store import SweepStore, SweepLocked\n"
            f"s = SweepStore.open({str(tmp_path)!r})\n"
            "try:\n    s.acquire()\nexcept SweepLocked as e:\n    print('LOCKED', e); sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "already running this sweep" in proc.stdout
    store.release()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_result_records_round_trip_and_journal(tmp_path: Path) -> None:
    store = SweepStore.open(tmp_path)
    first = TrialIdentity("abc123", 0, "1e12", point={"top_k": 2})
    trial = FinishedTrial(first, RunResult(status="ok", final_val_loss=1.5, val_curve=[(10, 1.5)]))
    path = store.write_result(trial)
    assert path.name == "abc123-s0.json"
    assert store.read_results() == {("abc123", 0): trial}
    assert not list(store.results_dir.glob("*.tmp"))
    second = TrialIdentity("def456", 0, "1e12", point={"top_k": 4})
    store.journal("start", first)
    store.journal("start", second)
    store.journal("finish", first, status="ok")
    with open(store.journal_path, "a") as f:
        f.write('{"event": "sta')  # a line torn by kill -9
    assert store.unfinished_starts() == {("def456", 0): second}
