"""The per-sweep storage directory: probe-write, launch lock, result records and the trial journal.

Everything the driver keeps on disk for one sweep lives under one directory (`<cluster.storage_path>/
<sweep name>-<spec hash>`):

    launch.lock              held (fcntl, via filelock) by the one `coe-sweep launch` running this sweep;
                             the OS drops it when the driver dies, even on kill -9
    results/<hash>.json      the finished trial's record: {config_hash, budget_label, params, result}
                             written atomically by the driver BEFORE it logs to MLflow, so a relaunch
                             re-logs anything MLflow missed
    journal.jsonl            one line per trial start/finish: which trials were running when a driver
                             died (re-run first on resume) and how often each was started
    tune/<budget>-<n>/       Ray Tune's own experiment directories
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args

from filelock import FileLock, Timeout

from coe_sweep.run import RunResult, TrialStatus

log = logging.getLogger(__name__)
TRIAL_STATUSES = get_args(TrialStatus)


class StorageError(RuntimeError):
    """The sweep's storage directory cannot be created or written (nothing was started)."""


class SweepLocked(RuntimeError):
    """Another `coe-sweep launch` of the same sweep holds the lock."""


@dataclass
class ResultRecord:
    config_hash: str
    budget_label: str
    params: dict[str, Any]
    result: dict[str, Any]  # RunResult.to_dict()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"config_hash": self.config_hash, "budget_label": self.budget_label, "params": self.params,
                "result": self.result, **({"extra": self.extra} if self.extra else {})}


class SweepStore:
    """One sweep's directory. Create with `SweepStore.open(path)` (probe-writes it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results_dir = root / "results"
        self.journal_path = root / "journal.jsonl"
        self.tune_dir = root / "tune"
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
    def write_result(self, record: ResultRecord) -> Path:
        """Atomic write (temp file + fsync + rename): a reader sees the old file or the whole new one."""
        path = self.results_dir / f"{record.config_hash}.json"
        fd, tmp = tempfile.mkstemp(dir=self.results_dir, prefix=f".{record.config_hash}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record.to_dict(), f, default=_json_default)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def read_results(self) -> dict[str, ResultRecord]:
        """Every readable record; one warning line for each file that is not one (kept on disk, its trial is
        simply not counted as finished, so the sweep runs it again)."""
        records: dict[str, ResultRecord] = {}
        for path in sorted(self.results_dir.glob("*.json")):
            try:
                record = _record_from(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                log.warning("ignoring unreadable result record %s: %s", path, str(exc).splitlines()[0][:200])
                continue
            records[record.config_hash] = record
        return records

    # --- journal ---
    def journal(self, event: str, config_hash: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "config_hash": config_hash, "time": time.time(), **fields},
                          default=_json_default)
        with open(self.journal_path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_journal(self) -> list[dict[str, Any]]:
        """The journal's events; a line that is not one (torn by kill -9 mid-write, edited) is skipped."""
        if not self.journal_path.exists():
            return []
        events = []
        for line in self.journal_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") in ("start", "finish") \
                    and isinstance(event.get("config_hash"), str):
                events.append(event)
        return events

    def unfinished_starts(self) -> dict[str, dict[str, Any]]:
        """Trials started but never finished (the driver died): config_hash -> their start event."""
        started: dict[str, dict[str, Any]] = {}
        for ev in self.read_journal():
            if ev["event"] == "start":
                started[ev["config_hash"]] = ev
            elif ev["event"] == "finish":
                started.pop(ev["config_hash"], None)
        return started

    def start_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ev in self.read_journal():
            if ev["event"] == "start":
                counts[ev["config_hash"]] = counts.get(ev["config_hash"], 0) + 1
        return counts


def _record_from(data: Any) -> ResultRecord:
    """A ResultRecord from a record file's JSON, or ValueError saying what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    for key, kind in (("config_hash", str), ("budget_label", str), ("params", dict), ("result", dict)):
        if not isinstance(data.get(key), kind):
            raise ValueError(f"{key}: expected {kind.__name__}, found {data.get(key)!r:.60}")
    extra = data.get("extra", {})
    try:
        result = RunResult.from_dict(data["result"])
    except (TypeError, ValueError) as exc:  # unknown or missing fields, curves that are not pairs
        raise ValueError(f"result: {exc}") from None
    if result.status not in TRIAL_STATUSES:
        raise ValueError(f"result.status: expected one of {', '.join(TRIAL_STATUSES)}, found {result.status!r:.40}")
    for f in fields(RunResult):  # numbers must be numbers (NaN is one: a diverged trial's loss)
        value, kind = getattr(result, f.name), str(f.type)
        if kind.startswith(("int", "float")) and not (isinstance(value, int | float) and not isinstance(value, bool)
                                                      or value is None and "None" in kind):
            raise ValueError(f"result.{f.name}: expected a number, found {value!r:.40}")
    if not isinstance(result.reason, str | None):
        raise ValueError(f"result.reason: expected a string, found {result.reason!r:.40}")
    return ResultRecord(data["config_hash"], data["budget_label"], data["params"], data["result"],
                        extra if isinstance(extra, dict) else {})


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)
