"""The driver's MLflow writes run off Tune's loop, in order, on one thread; a failing write never raises."""

from __future__ import annotations

import threading
import time

import pytest

from coe_sweep.sweep.writes import OrderedWrites


def test_writes_run_in_order_on_one_other_thread_and_drain_waits(caplog: pytest.LogCaptureFixture) -> None:
    writes, seen, threads = OrderedWrites(), [], set()

    def write(n: int) -> int:
        time.sleep(0.01 if n % 2 else 0.0)  # uneven durations: order must still hold
        seen.append(n)
        threads.add(threading.get_ident())
        return n

    def broken() -> None:
        raise RuntimeError("store refused")

    futures = [writes.submit(f"write {n}", write, n) for n in range(10)]
    failed = writes.submit("broken", broken)
    after = writes.submit("after", write, 10)
    writes.drain()
    assert seen == list(range(11)) and after.done()
    assert threads and threading.get_ident() not in threads and len(threads) == 1
    assert [f.result() for f in futures] == list(range(10)) and failed.result() is None
    assert "tracking: broken failed" in caplog.text
    writes.close()
    with pytest.raises(RuntimeError):
        writes.submit("late", write, 11)
