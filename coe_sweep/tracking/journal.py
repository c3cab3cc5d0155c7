"""Durability of tracking writes: one retry layer and a local write-ahead journal.

Every write of the SweepTracker is an *op*: a small JSON-able dict (`create_trial`, `log_batch`,
`set_terminated`, `log_text`). An op is applied with bounded exponential backoff; if the store stays
unreachable it is appended to `<directory>/journal.jsonl` (a coe_sweep.jsonl file, fsync'd) and later replayed in order.
Ops are idempotent by construction (metrics carry explicit steps and timestamps, which MLflow
dedupes; trial runs are found-or-created by config hash; params/tags/status rewrite the same
values), so a replay interrupted half-way can simply run again. `journal.applied` holds how many
leading entries are already applied, so a finished prefix is not re-sent.
Ops that the store refuses for good (e.g. the run was deleted) go to `journal.rejected.jsonl`
with the error: never silently dropped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from coe_sweep.jsonl import JsonLines
from coe_sweep.tracking.connection import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = dict[str, Any]

JOURNAL_FILE = "journal.jsonl"
APPLIED_FILE = "journal.applied"
REJECTED_FILE = "journal.rejected.jsonl"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: attempts, first pause, pause cap; how often to retry a backlog."""

    attempts: int = 4  # pauses 0.5 + 1 + 2 s: ~3.5 s before a write goes to the journal
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 4.0
    reconnect_interval_s: float = 10.0  # while journaling, writes try to drain at most this often

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts={self.attempts!r} is invalid: expected an integer >= 1")
        for name in ("initial_backoff_s", "max_backoff_s", "reconnect_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetryPolicy.{name}={getattr(self, name)!r} is invalid: expected >= 0")

    def pauses_s(self) -> list[float]:
        return [min(self.initial_backoff_s * 2**i, self.max_backoff_s) for i in range(self.attempts - 1)]


def call_with_retries(fn: Callable[[], T], policy: RetryPolicy, what: str,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Run fn; retry transient failures with the policy's pauses; re-raise the last one or any permanent one."""
    pauses = policy.pauses_s()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or attempt == policy.attempts - 1:
                raise
            log.info("tracking: %s failed (%s); retry %d/%d in %.1f s", what, type(exc).__name__,
                     attempt + 1, policy.attempts - 1, pauses[attempt])
            sleep(pauses[attempt])
    raise AssertionError("unreachable")


class Journal:
    """The tracking journal: ops not yet in the store (a coe_sweep.jsonl file), an applied-prefix watermark,
    and the ops the store refused for good."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL_FILE
        self.applied_path = self.directory / APPLIED_FILE
        self.rejected_path = self.directory / REJECTED_FILE
        self._lines = JsonLines(self.path)

    def append(self, op: Op) -> None:
        self._lines.append(op)

    def entries(self) -> list[tuple[int, Op]]:
        """(index, op) of every entry not yet applied, in order; a torn last line is skipped."""
        return [(index, op) for index, op in self._lines.read(start=self._applied())
                if isinstance(op.get("op"), str)]  # a line edited on disk: not an operation

    def __len__(self) -> int:
        return len(self.entries())

    def mark_applied(self, count: int) -> None:
        """Record that the first `count` lines are in the store (atomic replace)."""
        tmp = self.applied_path.with_suffix(".tmp")
        tmp.write_text(str(count), encoding="utf-8")
        os.replace(tmp, self.applied_path)

    def clear(self) -> None:
        """Forget a fully applied journal. The watermark goes first: a crash in between replays, never skips."""
        self.applied_path.unlink(missing_ok=True)
        self._lines.clear()

    def reject(self, op: Op, error: BaseException) -> None:
        log.error("tracking: the store refused a journaled %s for good (%s); kept in %s",
                  op.get("op"), error, self.rejected_path)
        JsonLines(self.rejected_path).append({"op": op, "error": str(error)[:2000]})

    def _applied(self) -> int:
        try:
            return int(self.applied_path.read_text(encoding="utf-8").strip() or 0)
        except FileNotFoundError:
            return 0
