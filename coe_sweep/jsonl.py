"""Append-only JSON-lines files, fsync'd line by line: the one journal implementation.

Used by the sweep store (trial starts and finishes, coe_sweep.sweep.store) and by the tracking journal
(MLflow writes waiting for the store, coe_sweep.tracking.journal). A line is written with one `write`
and fsync'd before `append` returns, so after a crash (even kill -9) the file holds every appended line
except, at worst, a torn last one, which `read` skips with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Record = dict[str, Any]


class JsonLines:
    """One append-only JSONL file; the parent directory is created on the first append."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def append(self, record: Record) -> None:
        """Write one line and fsync it. Values JSON cannot hold are written as their str()."""
        line = json.dumps(record, separators=(",", ":"), allow_nan=True, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read(self, start: int = 0) -> list[tuple[int, Record]]:
        """(line index, record) of every readable line from `start` on, in order; torn lines are skipped."""
        if not self.path.exists():
            return []
        out: list[tuple[int, Record]] = []
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for index, line in enumerate(fh):
                if index < start or not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s: skipping unreadable line %d (a write torn by a crash?)", self.path, index + 1)
                    continue
                if isinstance(record, dict):
                    out.append((index, record))
        return out

    def records(self) -> list[Record]:
        return [record for _, record in self.read()]

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
