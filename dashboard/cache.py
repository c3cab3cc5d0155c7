"""Per-sweep cache over the tracking read side: one full read, incremental refreshes, memoised answers.

Reading MLflow is slow for big sweeps, so the dashboard reads a sweep's `trials_frame` once, then,
while the sweep is running and the TTL has passed, asks only for runs updated since the last read
(`updated_after_ms`, with an overlap so that runs written during a read are not missed) and merges
them by run id. Every change bumps the sweep's data version; derived answers (fits, fronts,
rendered JSON) are memoised per (sweep, data version, parameters) and so never go stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pandas as pd

from coe_sweep.tracking import SweepNotFound

log = logging.getLogger(__name__)

T = TypeVar("T")
RUNNING = "running"


class TrackingReader(Protocol):
    """The read side the dashboard needs (coe_sweep.tracking.TrackingStore satisfies it)."""

    def list_sweeps(self) -> list[Any]: ...

    def trials_frame(self, sweep: str, updated_after_ms: int | None = None) -> pd.DataFrame: ...

    def trial(self, run_id: str) -> Any: ...

    def spec_yaml(self, sweep: str) -> str: ...


class UnknownSweep(LookupError):
    """No sweep has this id or name; `.known` lists the names that exist."""

    def __init__(self, key: str, known: list[str]) -> None:
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        super().__init__(f"sweep {key!r} not found; known sweeps: {shown or '(none)'}")
        self.key = key
        self.known = known


@dataclass
class SweepData:
    """A snapshot of one sweep's trials. Frames are never mutated in place: a refresh builds a new one."""

    sweep_id: str
    name: str
    frame: pd.DataFrame
    version: int
    running: bool
    refreshed_at_s: float  # monotonic clock of the last read
    watermark_ms: int  # wall-clock ms handed to the next incremental read


def is_running(summary: Any) -> bool:
    return str(getattr(summary, "status", "")).lower() == RUNNING


def _merge(old: pd.DataFrame, delta: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Replace/append the delta's rows by run id; report whether anything actually changed."""
    if delta.empty:
        return old, False
    if old.empty:
        return delta.reset_index(drop=True), True
    delta = delta.drop_duplicates("run_id", keep="last")
    seen = old["run_id"].isin(delta["run_id"])
    if seen.sum() == len(delta):
        columns = sorted(set(old.columns) | set(delta.columns))
        before = old.loc[seen].reindex(columns=columns).sort_values("run_id").reset_index(drop=True)
        after = delta.reindex(columns=columns).sort_values("run_id").reset_index(drop=True)
        if before.astype(object).equals(after.astype(object)):
            return old, False
    merged = pd.concat([old.loc[~seen], delta], ignore_index=True, sort=False)
    return merged, True


class SweepCache:
    """Thread-safe cache of sweeps, their trial frames and memoised derived answers."""

    def __init__(self, store: TrackingReader, ttl_s: float = 5.0, *, overlap_ms: int = 5_000,
                 memo_size: int = 512, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.overlap_ms = overlap_ms
        self._clock = clock
        self._lock = threading.RLock()
        self._sweeps: list[Any] | None = None
        self._sweeps_at_s = 0.0
        self._sweeps_thread: threading.Thread | None = None
        self._data: dict[str, SweepData] = {}
        self._memo: OrderedDict[Hashable, Any] = OrderedDict()
        self._memo_size = memo_size

    # --- sweeps -------------------------------------------------------------------------------
    def sweeps(self, *, force: bool = False) -> list[Any]:
        """The sweep list. First read and `force` are synchronous; once it is older than the TTL it is
        re-read in a background thread (the store counts every sweep's trials, which is slow for big
        sweeps) while callers keep the previous list."""
        with self._lock:
            if self._sweeps is None or force:
                self._sweeps = list(self.store.list_sweeps())
                self._sweeps_at_s = self._clock()
            elif self._clock() - self._sweeps_at_s >= self.ttl_s and self._sweeps_thread is None:
                self._sweeps_thread = threading.Thread(target=self._refresh_sweeps, name="sweep-list-refresh",
                                                       daemon=True)
                self._sweeps_thread.start()
            return self._sweeps

    def _refresh_sweeps(self) -> None:
        try:
            sweeps = list(self.store.list_sweeps())
            with self._lock:
                self._sweeps, self._sweeps_at_s = sweeps, self._clock()
        except Exception:  # keep serving the previous list; the next stale read retries
            log.exception("refreshing the sweep list failed")
        finally:
            with self._lock:
                self._sweeps_thread = None

    def resolve(self, key: str) -> Any:
        """The sweep summary with this id or name (newest start wins for a repeated name)."""
        for attempt in range(2):
            sweeps = self.sweeps(force=attempt == 1)
            by_id = [s for s in sweeps if str(s.id) == key]
            by_name = [s for s in sweeps if str(s.name) == key]
            if by_id or by_name:
                matches = by_id or by_name
                return max(matches, key=lambda s: _as_float(getattr(s, "start_time", None)))
        raise UnknownSweep(key, sorted({str(s.name) for s in self.sweeps()}))

    # --- trial frames ---------------------------------------------------------------------------
    def data(self, key: str) -> SweepData:
        """The sweep's trials, loaded once and refreshed incrementally while it runs."""
        summary = self.resolve(key)
        sweep_id = str(summary.id)
        with self._lock:
            current = self._data.get(sweep_id)
            now_s = self._clock()
            if current is None:
                current = self._load(summary)
            elif now_s - current.refreshed_at_s >= self.ttl_s and (current.running or is_running(summary)):
                current = self._refresh(current, summary)
            self._data[sweep_id] = current
            return current

    def _read(self, sweep_id: str, updated_after_ms: int | None) -> pd.DataFrame:
        try:
            return self.store.trials_frame(sweep_id, updated_after_ms=updated_after_ms)
        except SweepNotFound as exc:  # deleted between listing and reading
            raise UnknownSweep(sweep_id, []) from exc

    def _load(self, summary: Any) -> SweepData:
        started_ms = int(time.time() * 1000)
        frame = self._read(str(summary.id), None).reset_index(drop=True)
        log.info("loaded sweep %s: %d trials", summary.name, len(frame))
        return SweepData(sweep_id=str(summary.id), name=str(summary.name), frame=frame, version=1,
                         running=is_running(summary), refreshed_at_s=self._clock(),
                         watermark_ms=started_ms - self.overlap_ms)

    def _refresh(self, current: SweepData, summary: Any) -> SweepData:
        started_ms = int(time.time() * 1000)
        delta = self._read(current.sweep_id, current.watermark_ms)
        frame, changed = _merge(current.frame, delta)
        if changed:
            log.info("sweep %s: %d updated trials, now %d", current.name, len(delta), len(frame))
        return SweepData(sweep_id=current.sweep_id, name=current.name, frame=frame,
                         version=current.version + int(changed), running=is_running(summary),
                         refreshed_at_s=self._clock(), watermark_ms=started_ms - self.overlap_ms)

    # --- memoised answers ---------------------------------------------------------------------
    def memo(self, data: SweepData, name: str, params: Hashable, compute: Callable[[], T]) -> T:
        """`compute()` once per (sweep, data version, name, params); LRU-bounded."""
        key = (data.sweep_id, data.version, name, params)
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = compute()  # outside the lock: fits may take a while; a duplicate compute is harmless
        with self._lock:
            self._memo[key] = value
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return value

    def trial(self, run_id: str) -> Any:
        return self.store.trial(run_id)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("-inf")
