"""The sweep's own directory: probe-write, launch lock, result records and the trial journal.

Everything the driver keeps on disk for one sweep lives under one directory
(`<cluster.storage_path>/<spec hash[:12]>`, see coe_sweep.sweep.driver.sweep_dir):

    launch.lock              held (fcntl, via filelock) by the one `coe-sweep launch` running this sweep;
                             the OS drops it when the driver dies, even on kill -9
    results/<hash>-s<seed>.json  a finished trial (coe_sweep.trial.FinishedTrial: identity + RunResult), written
                             atomically by the driver BEFORE it logs to MLflow, so a relaunch re-logs
                             anything MLflow missed
    journal.jsonl            one line per trial start/finish (coe_sweep.jsonl): which trials were running
                             when a driver died (run again first on resume) and how often each started
    tune/<experiment>/       Ray Tune's own experiment directories
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from coe_sweep.jsonl import JsonLines
from coe_sweep.trial import RESULT_STATUSES, FinishedTrial, TrialIdentity

log = logging.getLogger(__name__)

TrialKey = tuple[str, int]  # (config hash, seed): TrialIdentity.key


class StorageError(RuntimeError):
    """The sweep's storage directory cannot be created or written (nothing was started)."""


class SweepLocked(RuntimeError):
    """Another `coe-sweep launch` of the same sweep holds the lock."""


def record_name(identity: TrialIdentity) -> str:
    """File stem of a trial's result record: `<config hash>-s<seed>`."""
    return f"{identity.config_hash}-s{identity.seed}"


class SweepStore:
    """One sweep's directory. Create with `SweepStore.open(path)` (probe-writes it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results_dir = root / "results"
        self.journal_path = root / "journal.jsonl"
        self.tune_dir = root / "tune"
        self._journal = JsonLines(self.journal_path)
        self._lock: FileLock | None = None

    @classmethod
    def open(cls, root: Path | str) -> SweepStore:
        """Create the directory tree and prove it is writable (a clear StorageError, not a traceback)."""
        root = Path(root).expanduser().absolute()
        try:
            for d in (root, root / "results", root / "tune"):
                d.mkdir(parents=True, exist_ok=True)
            probe = root / f".probe-{os.getpid()}"
            with open(probe, "wb") as f:
                f.write(b"x" * 4096)
                f.flush()
                os.fsync(f.fileno())
            probe.unlink()
        except OSError as exc:
            raise StorageError(
                f"cluster.storage_path: cannot write the sweep directory {str(root)!r} "
                f"({exc.strerror or exc}); expected a writable directory with free space "
                f"(set cluster.storage_path, e.g. --set cluster.storage_path=/tmp/coe-sweep)") from exc
        return cls(root)

    # --- lock ---
    def acquire(self) -> None:
        lock = FileLock(str(self.root / "launch.lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout as exc:
            raise SweepLocked(
                f"another `coe-sweep launch` is already running this sweep (lock {self.root / 'launch.lock'} "
                f"is held); wait for it to finish, or watch it with `coe-sweep status`") from exc
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # --- result records ---
    def write_result(self, trial: FinishedTrial) -> Path:
        """Atomic write (temp file + fsync + rename): a reader sees the old file or the whole new one."""
        name = record_name(trial.identity)
        path = self.results_dir / f"{name}.json"
        fd, tmp = tempfile.mkstemp(dir=self.results_dir, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(trial.to_dict(), f, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def read_results(self) -> dict[TrialKey, FinishedTrial]:
        records: dict[TrialKey, FinishedTrial] = {}
        for path in sorted(self.results_dir.glob("*.json")):
            try:
                trial = _trial_from(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:  # undecodable, not JSON, not a record
                log.warning("ignoring unreadable result record %s: %s", path, str(exc).splitlines()[0][:200]
                            if str(exc) else type(exc).__name__)
                continue
            records[trial.identity.key] = trial
        return records

    # --- trial journal ---
    def journal(self, event: str, identity: TrialIdentity, **fields: Any) -> None:
        """One fsync'd line: a trial's `start` (with its identity) or `finish` (with its status)."""
        self._journal.append({"event": event, **identity.to_dict(), "time": time.time(), **fields})

    def read_journal(self) -> list[dict[str, Any]]:
        return self._journal.records()

    def unfinished_starts(self) -> dict[TrialKey, TrialIdentity]:
        """Trials started but never finished (the driver died), with the identity of their start."""
        started: dict[TrialKey, TrialIdentity] = {}
        for event in self.read_journal():
            try:
                identity = TrialIdentity.from_dict(event)
            except (KeyError, TypeError, ValueError):  # a line edited or torn on disk: not a trial event
                continue
            if event.get("event") == "start":
                started[identity.key] = identity
            elif event.get("event") == "finish":
                started.pop(identity.key, None)
        return started


def _trial_from(data: Any) -> FinishedTrial:
    """A FinishedTrial from a record file's JSON, or ValueError saying what is wrong with it (a record edited,
    torn or written by something else must not become a trial, nor stop the relaunch)."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    for key in ("identity", "result"):
        if not isinstance(data.get(key), dict):
            raise ValueError(f"{key}: expected dict, found {data.get(key)!r:.60}")
    identity, result = data["identity"], data["result"]
    for key, kind in (("config_hash", str), ("budget_label", str), ("point", dict)):
        if not isinstance(identity.get(key), kind):
            raise ValueError(f"identity.{key}: expected {kind.__name__}, found {identity.get(key)!r:.60}")
    if result.get("status") not in [s.value for s in RESULT_STATUSES]:
        raise ValueError(f"result.status: expected one of {', '.join(s.value for s in RESULT_STATUSES)}, "
                         f"found {result.get('status')!r:.40}")
    try:
        return FinishedTrial.from_dict(data)
    except (TypeError, ValueError, KeyError) as exc:  # unknown or missing fields, numbers that are not
        raise ValueError(f"result: {str(exc).removeprefix('RunResult.')}") from None
