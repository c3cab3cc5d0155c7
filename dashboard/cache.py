"""Per-sweep cache over the tracking read side: one full read, incremental refreshes, memoised answers.

Reading MLflow is slow for big sweeps, so the dashboard reads a sweep's `trials_frame` once, then,
while the sweep is running and the TTL has passed, asks only for runs updated since the last read
(`updated_after_ms`, with an overlap so that runs written during a read are not missed) and merges
them by run id. Every change bumps the sweep's data version; derived answers (fits, fronts,
rendered JSON) are memoised per (sweep, data version, parameters) and so never go stale.

Under load (many clients at once):
- the lock guards dictionaries only: the store is read and answers are computed outside it;
- one computation per key (`SingleFlight`): clients asking for a sweep, a list or an answer that is
  being computed wait for that computation instead of starting their own;
- a name that matches no sweep re-reads the sweep list at most once per `relist_s`, and is then
  remembered as unknown for `miss_ttl_s` (a short negative cache), so a burst of unknown names costs
  dictionary lookups, not store reads;
- while a running sweep is refreshed, other clients get the previous snapshot.
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
MAX_MISSES = 4096  # remembered unknown names (LRU)


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


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """At most one running computation per key; callers arriving meanwhile wait for its value (or error)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def running(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._flights

    def do(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            flight.value = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.value


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
                 memo_size: int = 512, clock: Callable[[], float] = time.monotonic,
                 relist_s: float = 1.0, miss_ttl_s: float = 2.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.overlap_ms = overlap_ms
        self.relist_s = relist_s
        self.miss_ttl_s = miss_ttl_s
        self._clock = clock
        self._lock = threading.Lock()  # guards the dictionaries below; never held during a store read
        self._flights = SingleFlight()
        self._sweeps: list[Any] | None = None
        self._sweeps_at_s = 0.0
        self._refreshing = False  # a background re-read of the list is under way
        self._data: dict[str, SweepData] = {}
        self._misses: OrderedDict[str, float] = OrderedDict()  # unknown name -> until (clock)
        self._memo: OrderedDict[Hashable, Any] = OrderedDict()
        self._memo_size = memo_size

    # --- sweeps -------------------------------------------------------------------------------
    def sweeps(self, *, force: bool = False, max_age_s: float | None = None) -> list[Any]:
        """The sweep list. The first read, `force` and a list older than `max_age_s` are read now (one read
        shared by every caller); a list older than the TTL is re-read in the background while callers keep
        the previous one."""
        with self._lock:
            current, age_s = self._sweeps, self._clock() - self._sweeps_at_s
            background = current is not None and age_s >= self.ttl_s and not self._refreshing
            self._refreshing |= background
        if current is None or force or (max_age_s is not None and age_s >= max_age_s):
            return self._flights.do("sweeps", self._read_sweeps)
        if background:
            threading.Thread(target=self._refresh_sweeps, name="sweep-list-refresh", daemon=True).start()
        return current

    def _read_sweeps(self) -> list[Any]:
        sweeps = list(self.store.list_sweeps())
        with self._lock:
            self._sweeps, self._sweeps_at_s = sweeps, self._clock()
            self._misses.clear()  # a new list answers every name afresh
        return sweeps

    def _refresh_sweeps(self) -> None:
        try:
            self._flights.do("sweeps", self._read_sweeps)
        except Exception as exc:  # noqa: BLE001 - keep serving the previous list; the next stale read retries
            log.warning("refreshing the sweep list failed: %s", str(exc).splitlines()[0][:300] if str(exc) else exc)
        finally:
            with self._lock:
                self._refreshing = False

    def resolve(self, key: str) -> Any:
        """The sweep summary with this id or name (newest start wins for a repeated name). A miss re-reads the
        list at most once per `relist_s` and is then remembered for `miss_ttl_s`."""
        found = self._find(key, self.sweeps())
        if found is not None:
            return found
        with self._lock:
            remembered = self._misses.get(key, 0.0) > self._clock()
        if not remembered:
            found = self._find(key, self.sweeps(max_age_s=self.relist_s))
            if found is not None:
                return found
            with self._lock:
                self._misses[key] = self._clock() + self.miss_ttl_s
                self._misses.move_to_end(key)
                while len(self._misses) > MAX_MISSES:
                    self._misses.popitem(last=False)
        raise UnknownSweep(key, sorted({str(s.name) for s in self.sweeps()}))

    @staticmethod
    def _find(key: str, sweeps: list[Any]) -> Any:
        matches = [s for s in sweeps if str(s.id) == key] or [s for s in sweeps if str(s.name) == key]
        return max(matches, key=lambda s: _as_float(getattr(s, "start_time", None))) if matches else None

    # --- trial frames ---------------------------------------------------------------------------
    def data(self, key: str) -> SweepData:
        """The sweep's trials, loaded once (one load shared by every caller) and refreshed incrementally
        while it runs; during a refresh other callers get the previous snapshot."""
        summary = self.resolve(key)
        sweep_id = str(summary.id)
        with self._lock:
            current = self._data.get(sweep_id)
        if current is None:
            return self._flights.do(("data", sweep_id), lambda: self._load_once(summary))
        if self._clock() - current.refreshed_at_s < self.ttl_s or not (current.running or is_running(summary)):
            return current
        if self._flights.running(("data", sweep_id)):
            return current
        return self._flights.do(("data", sweep_id), lambda: self._refresh_once(summary))

    def _load_once(self, summary: Any) -> SweepData:
        with self._lock:
            current = self._data.get(str(summary.id))
        if current is not None:  # loaded by a flight that ended just before this one started
            return current
        return self._store(self._load(summary))

    def _refresh_once(self, summary: Any) -> SweepData:
        with self._lock:
            current = self._data[str(summary.id)]
        if self._clock() - current.refreshed_at_s < self.ttl_s:  # refreshed meanwhile
            return current
        return self._store(self._refresh(current, summary))

    def _store(self, data: SweepData) -> SweepData:
        with self._lock:
            self._data[data.sweep_id] = data
        return data

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
        """`compute()` once per (sweep, data version, name, params), shared by concurrent callers; LRU-bounded."""
        key = (data.sweep_id, data.version, name, params)
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        return self._flights.do(("memo", key), lambda: self._compute(key, compute))

    def _compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._memo:  # computed by a flight that ended just before this one started
                return self._memo[key]
        value = compute()
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
