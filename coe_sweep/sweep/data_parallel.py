"""A data-parallel trial: one Tune trial that trains its RunSpec on N Ray Train workers with torch DDP.

Ray 2.60 runs Ray Train V2, where a Trainer is not a Tune trainable: the supported route is a Tune function
trainable that calls `TorchTrainer.fit()` and forwards the workers' reports to Tune with
`ray.tune.integration.ray_train.TuneReportCallback` (rank 0's metrics). So:

    Tune trial (DRIVER_CPUS: it only waits) -> TorchTrainer(ScalingConfig(workers, CPUs/GPUs per worker),
                                                       TorchConfig(gloo on CPU, nccl on CUDA))
      -> each worker: runners.trainable.run_trial(config, report=ray.train.report, data_parallel=its rank)
         (runners/distributed.py: shard of the global batch, DDP, loss all-reduce, rank 0 evaluates)

Every rank reports the same metrics at the same steps (rank 0's are forwarded), the last report carries
the RunResult, so the driver's callback records a data-parallel trial like any other. A worker whose
training raises ends the whole worker group (the others would wait in a collective); the failed Train
run becomes a failed (or oom) RunResult reported from here, named after the first failed rank. The CUDA branch (nccl, one GPU per worker, torch.cuda.set_device) has not run on a GPU yet.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from ray import tune

from coe_sweep.trial import RunResult, TrialStatus
from runners.trainable import final_metrics, trial_identity

log = logging.getLogger(__name__)

# Tune cannot schedule a trial that reserves nothing, and the Train workers must fit beside it: the trial's
# driver process keeps this sliver of the trial's CPUs and the workers share the rest, so a data-parallel
# trial reserves exactly cluster.cpus_per_trial in all.
DRIVER_CPUS = 0.01
COLLECTIVE_TIMEOUT_S = 600  # a rank left waiting alone in a collective errors after this (torch default: 30 min)


def backend_for(use_gpu: bool) -> str:
    """The process-group backend: nccl between GPUs, gloo between CPU processes."""
    return "nccl" if use_gpu else "gloo"


def driver_and_worker_cpus(cpus_per_trial: float, workers: int) -> tuple[float, float]:
    """(CPUs Tune reserves for the trial's driver, CPUs of each Train worker): cpus_per_trial in all."""
    return DRIVER_CPUS, (cpus_per_trial - DRIVER_CPUS) / workers


def run_data_parallel_trial(config: dict[str, Any], *, workers: int, cpus_per_worker: float, gpus_per_worker: float,
                            storage_path: str, objectives: tuple[str, ...] = ("val_loss",),
                            intermediate: bool = True) -> None:
    """Tune function trainable of a data-parallel trial (see the module docstring). Returns nothing: the
    workers report through Ray Train; only a Train run that failed as a whole is reported from here."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    start_s = time.perf_counter()
    identity = trial_identity(config)
    use_gpu = gpus_per_worker > 0
    per_worker = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if use_gpu else {})}
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": config, "objectives": list(objectives), "intermediate": intermediate,
                           "use_gpu": use_gpu},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        torch_config=TorchConfig(backend=backend_for(use_gpu), timeout_s=COLLECTIVE_TIMEOUT_S),
        run_config=RunConfig(name=f"{identity.trial_id}-{uuid.uuid4().hex[:8]}", storage_path=storage_path,
                             callbacks=[TuneReportCallback()],  # type: ignore[list-item]  # a V2 UserCallback
                             failure_config=FailureConfig(max_failures=0)))
    try:
        trainer.fit()
    except Exception as exc:  # noqa: BLE001 - a trial never kills the sweep: it reports its failure
        log.warning("data-parallel trial %s failed: %s: %s", identity.trial_id, type(exc).__name__, exc)
        status, reason = failure_of(exc)
        result = RunResult(status=status, reason=reason[:2000], wall_s=time.perf_counter() - start_s,
                           workers=workers)
        tune.report(final_metrics(result, objectives))


def failure_of(exc: BaseException) -> tuple[TrialStatus, str]:
    """(status, reason) of a failed Train run: the first failed worker's own exception, classified like a
    single-process trial's (out-of-memory -> oom, else failed), named with its rank."""
    from runners.train import classify_failure

    failures: dict[int, BaseException] = getattr(exc, "worker_failures", None) or {}
    if not failures:
        return TrialStatus.FAILED, f"data-parallel run failed: {type(exc).__name__}: {exc}"
    rank = min(failures)
    cause = failures[rank]
    cause = getattr(cause, "cause", None) or cause  # a RayTaskError carries the worker's exception as .cause
    status, reason = classify_failure(cause)
    return status, f"worker {rank} of {len(failures)} failed: {reason}"


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: its rank of the trial (the process group is already up)."""
    import ray.train

    from runners.distributed import DataParallel
    from runners.trainable import run_trial

    ctx = ray.train.get_context()
    if loop_config["use_gpu"]:  # this worker's GPU becomes the current device that runners.device picks
        import torch
        from ray.train.torch import get_device

        torch.cuda.set_device(get_device())
    run_trial(loop_config["config"], report=ray.train.report, objectives=tuple(loop_config["objectives"]),
              intermediate=bool(loop_config["intermediate"]),
              data_parallel=DataParallel(ctx.get_world_rank(), ctx.get_world_size()))


def train_storage(tune_dir: Path) -> str:
    """Where the Train runs of data-parallel trials keep their (small) run state: beside Tune's."""
    return str(tune_dir / "train")
