"""coe_sweep.sweep.data_parallel.failure_of: a failed Train run becomes the status and reason of its first
failed worker, classified like a single-process trial (real Ray Train exception types, no Ray started)."""

from __future__ import annotations

import torch
from ray.train import ControllerError
from ray.train.v2.api.exceptions import WorkerGroupError

from coe_sweep.sweep.data_parallel import failure_of
from coe_sweep.trial import TrialStatus


def test_worker_out_of_memory_is_oom_named_with_its_rank() -> None:
    exc = WorkerGroupError("boom", {1: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                                    3: RuntimeError("peer closed")})
    status, reason = failure_of(exc)
    assert status == TrialStatus.OOM
    assert reason.startswith("worker 1 of 2 failed: OutOfMemoryError") and "2 GiB" in reason


def test_other_worker_errors_and_controller_errors_are_failed() -> None:
    status, reason = failure_of(WorkerGroupError("boom", {0: ValueError("bad batch")}))
    assert (status, reason) == (TrialStatus.FAILED, "worker 0 of 1 failed: ValueError: bad batch")
    status, reason = failure_of(ControllerError(RuntimeError("placement group timed out")))
    assert status == TrialStatus.FAILED and reason.startswith("data-parallel run failed: ControllerError")
