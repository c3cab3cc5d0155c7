"""The per-sweep cache over a real MLflow store: one full read, incremental refresh, memoisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sweepgen
from fastapi.testclient import TestClient

from coe_sweep.tracking import SweepTracker, TrackingStore
from dashboard import create_app
from dashboard.cache import SweepCache, UnknownSweep
from dashboard.settings import Settings


class CountingStore:
    """A real TrackingStore that counts how the cache reads it."""

    def __init__(self, store: TrackingStore) -> None:
        self.store = store
        self.reads: list[int | None] = []

    def list_sweeps(self) -> list[Any]:
        return self.store.list_sweeps()

    def trials_frame(self, sweep: str, updated_after_ms: int | None = None) -> Any:
        self.reads.append(updated_after_ms)
        return self.store.trials_frame(sweep, updated_after_ms=updated_after_ms)

    def trial(self, run_id: str) -> Any:
        return self.store.trial(run_id)


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def live_sweep(tmp_path: Path) -> tuple[str, SweepTracker, list[sweepgen.Plan]]:
    """A sweep still running: 4 finished trials now, more to come."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plans = list(sweepgen.grid(budgets=(("1e12", 1e12),), d_models=(16, 32, 64, 128, 192), iterations=(1, 2)))
    tracker = SweepTracker(uri, "live", "name: live\n", "spec-live", journal_dir=str(tmp_path / "journal"))
    tracker.start()
    for p in plans[:4]:
        tracker.log_result(tracker.start_trial(p.config_hash, p.flat_params()), sweepgen.result_for(p))
    return uri, tracker, plans


def finish_trial(tracker: SweepTracker, p: sweepgen.Plan) -> str:
    run_id = tracker.start_trial(p.config_hash, p.flat_params())
    tracker.log_result(run_id, sweepgen.result_for(p))
    return run_id


def test_running_sweep_picks_up_new_runs_incrementally(live_sweep) -> None:  # noqa: ANN001
    uri, tracker, plans = live_sweep
    store, clock = CountingStore(TrackingStore(uri)), Clock()
    cache = SweepCache(store, ttl_s=5.0, clock=clock)
    first = cache.data("live")
    assert len(first.frame) == 4 and first.running and store.reads == [None]
    new_id = finish_trial(tracker, plans[4])
    assert cache.data("live") is first  # within the TTL: no read at all
    assert store.reads == [None]
    clock.now_s += 6.0
    second = cache.data("live")
    assert new_id in set(second.frame["run_id"]) and len(second.frame) == 5
    assert second.version == first.version + 1
    assert len(store.reads) == 2 and store.reads[1] is not None  # incremental, not a full re-read
    clock.now_s += 6.0
    assert cache.data("live").version == second.version  # nothing new: same version


def test_api_answers_change_when_a_run_finishes(live_sweep) -> None:  # noqa: ANN001
    uri, tracker, plans = live_sweep
    app = create_app(TrackingStore(uri), Settings(tracking_uri=uri, cache_ttl_s=0.0))
    with TestClient(app) as client:
        before = client.get("/api/sweeps/live/pareto", params={"include_dominated": "true"}).json()
        assert before["n_considered"] == 4
        finish_trial(tracker, plans[5])
        after = client.get("/api/sweeps/live/pareto", params={"include_dominated": "true"}).json()
        assert after["n_considered"] == 5 and after["data_version"] == before["data_version"] + 1
        trials = client.get("/api/sweeps/live/trials").json()
        assert trials["total"] == 5


def test_finished_sweep_is_read_once_and_answers_are_memoised(tracking_uri: str) -> None:
    store, clock = CountingStore(TrackingStore(tracking_uri)), Clock()
    cache = SweepCache(store, ttl_s=1.0, clock=clock)
    data = cache.data("synthetic")
    calls: list[int] = []
    first = cache.memo(data, "answer", ("x",), lambda: calls.append(1) or object())
    clock.now_s += 100.0
    assert cache.data("synthetic") is data  # FINISHED: never re-read
    assert cache.memo(data, "answer", ("x",), lambda: calls.append(1) or object()) is first
    assert cache.memo(data, "answer", ("y",), lambda: calls.append(1) or object()) is not first
    assert calls == [1, 1] and store.reads == [None]


def test_unknown_sweep_names_the_known_ones(tracking_uri: str) -> None:
    cache = SweepCache(TrackingStore(tracking_uri))
    with pytest.raises(UnknownSweep, match="'nope' not found; known sweeps: .*synthetic"):
        cache.data("nope")
