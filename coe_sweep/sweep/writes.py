"""The driver's MLflow writes off Ray Tune's event loop: one background thread applies them in order.

Tune runs callbacks on its own loop, so a write that waits on the tracking store (tens of milliseconds per
call on sqlite, more on a server) used to hold up the start of the next trial. The sweep store's result
record is still written on the loop, before its MLflow write is queued: a driver killed with writes still
queued loses nothing, the relaunch re-logs them from the records (coe_sweep.sweep.resume).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


def _safe(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # tracking must never kill the sweep; the result record lets resume re-log
        log.exception("tracking: %s failed (the result record keeps the trial for a relaunch)", what)
        return None


class OrderedWrites:
    """Calls run one at a time, in submission order, on one thread; a call that raises is logged, its
    future holds None."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coe-sweep-mlflow")

    def submit(self, what: str, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(_safe, what, fn, *args)

    def drain(self) -> None:
        """Wait until every call submitted so far has run."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        """Run what is queued, then stop the thread (later submits raise RuntimeError)."""
        self._pool.shutdown(wait=True)
