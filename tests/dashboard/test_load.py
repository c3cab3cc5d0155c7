"""The cache under concurrent load, over a real MLflow store: one computation per key however many clients
wait for it, store reads outside the lock, unknown names that do not re-list the store each time, and a
store that is down answered with 503 JSON naming it (credentials redacted)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coe_sweep.tracking import TrackingStore
from dashboard import create_app
from dashboard.cache import SingleFlight, SweepCache, UnknownSweep
from dashboard.settings import Settings

CLIENTS = 16


class SlowStore:
    """A real TrackingStore whose reads are counted and can be held open (to make requests overlap)."""

    def __init__(self, store: TrackingStore) -> None:
        self.store = store
        self.lists = 0
        self.frames: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def list_sweeps(self) -> list[Any]:
        with self._lock:
            self.lists += 1
        return self.store.list_sweeps()

    def trials_frame(self, sweep: str, updated_after_ms: int | None = None) -> Any:
        with self._lock:
            self.frames.append(sweep)
        self.entered.set()
        assert self.gate.wait(60), "the test never released the read"
        return self.store.trials_frame(sweep, updated_after_ms=updated_after_ms)

    def trial(self, run_id: str) -> Any:
        return self.store.trial(run_id)


def _together(fn: Any, n: int = CLIENTS) -> list[Any]:
    """`fn()` from n threads released at once; their results (or exceptions)."""
    barrier = threading.Barrier(n)

    def call() -> Any:
        barrier.wait()
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - returned for the assertions
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: call(), range(n)))


def test_single_flight_runs_one_computation_and_shares_its_value_and_error() -> None:
    flights, calls = SingleFlight(), []

    def slow() -> object:
        calls.append(1)
        time.sleep(0.3)
        return object()

    values = _together(lambda: flights.do("k", slow))
    assert len(calls) == 1 and len({id(v) for v in values}) == 1

    def failing() -> None:
        calls.append(2)
        time.sleep(0.3)
        raise ValueError("store down")

    errors = _together(lambda: flights.do("k", failing))
    assert calls.count(2) == 1 and all(isinstance(e, ValueError) for e in errors)
    assert not flights.running("k")


def test_concurrent_first_requests_read_the_sweep_once_and_compute_once(tracking_uri: str) -> None:
    store = SlowStore(TrackingStore(tracking_uri))
    cache = SweepCache(store)
    snapshots = _together(lambda: cache.data("synthetic"))
    assert store.frames == [store.store.sweep("synthetic").id] and store.lists == 1
    assert len({id(s) for s in snapshots}) == 1
    computed: list[int] = []

    def fit() -> object:
        computed.append(1)
        time.sleep(0.3)
        return object()

    answers = _together(lambda: cache.memo(snapshots[0], "fit", ("x",), fit))
    assert computed == [1] and len({id(a) for a in answers}) == 1


def test_a_slow_read_holds_no_lock_over_other_sweeps(tracking_uri: str) -> None:
    store = SlowStore(TrackingStore(tracking_uri))
    cache = SweepCache(store)
    loaded = cache.data("synthetic")  # cached
    cache._data.pop(loaded.sweep_id)  # noqa: SLF001 - forget it again: the next read blocks on the gate
    other = {"data": None}
    store.gate.clear()
    store.entered.clear()
    reader = threading.Thread(target=lambda: cache.data("synthetic"))
    reader.start()
    assert store.entered.wait(30)
    started = time.monotonic()
    other["data"] = cache.sweeps()  # list, resolve and memo lookups go on while the read is held open
    assert cache.resolve("synthetic").name == "synthetic"
    with pytest.raises(UnknownSweep):
        cache.resolve("nope-" + uuid.uuid4().hex)
    assert time.monotonic() - started < 5
    store.gate.set()
    reader.join(60)
    assert other["data"] and len(store.frames) == 2


def test_unknown_names_do_not_relist_the_store_each_time(tracking_uri: str) -> None:
    store = SlowStore(TrackingStore(tracking_uri))
    clock = [1000.0]
    cache = SweepCache(store, clock=lambda: clock[0], relist_s=1.0, miss_ttl_s=2.0)
    cache.sweeps()
    assert store.lists == 1
    for _ in range(200):  # a storm of distinct unknown names within one relist interval
        with pytest.raises(UnknownSweep):
            cache.resolve("nope-" + uuid.uuid4().hex)
    assert store.lists == 1
    clock[0] += 1.5
    _together(lambda: pytest.raises(UnknownSweep, cache.resolve, "nope-again"))
    assert store.lists == 2  # one shared re-read for the whole burst once the list was older than relist_s
    for _ in range(50):  # the same unknown name again: remembered, no re-read
        with pytest.raises(UnknownSweep):
            cache.resolve("nope-again")
    assert store.lists == 2
    assert cache.resolve("synthetic").name == "synthetic" and store.lists == 2


def test_a_store_that_is_down_answers_503_naming_it_without_the_password() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://coe:hunter2-secret@127.0.0.1:{port}"
    app = create_app(TrackingStore(uri), Settings(tracking_uri=uri))
    with TestClient(app) as client:
        for path in ("/api/sweeps", "/api/sweeps/anything", "/api/sweeps/anything/frontier", "/sweeps/anything"):
            response = client.get(path)
            assert response.status_code == 503, (path, response.text)
            detail = response.json()["detail"]
            assert f"127.0.0.1:{port}" in detail and "unreachable" in detail and "hunter2" not in detail
            assert "coe:***@" in detail and response.headers["retry-after"] == "5"
