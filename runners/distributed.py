"""One data-parallel trial's view of its process group: which rank this worker is, its shard of the
global batch, and the few collectives the training loop needs (Ray-free; coe_sweep.sweep.data_parallel
starts the workers through Ray Train, which creates the process group: gloo on CPU, nccl on CUDA).

Contract with runners/train.py: every rank draws the SAME global batch from the training seed and takes
rows [rank * b, (rank + 1) * b) of it, b = global batch / world size; DistributedDataParallel averages the
gradients, so with equal shards the update equals the single-worker update on the global batch (up to the
order of fp32 sums). Step losses are averaged over ranks when they are read (one all-reduce per read, not
per step); rank 0 evaluates and broadcasts the validation loss, so that every rank takes the same
decisions (divergence, reports, compilation) at the same steps and no rank waits on a collective alone.

`train_on_local_processes` runs the same ranks as spawned local processes over gloo, without Ray (tests
and benchmarks/data_parallel_step.py).
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

if TYPE_CHECKING:
    from coe_sweep.trial import RunResult, RunSpec


@dataclass(frozen=True)
class DataParallel:
    """This worker's rank in a process group of `world_size` (already initialised by the caller)."""

    rank: int
    world_size: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"DataParallel.rank={self.rank} is invalid: expected 0..{self.world_size - 1}")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard_rows(self, global_batch: int) -> slice:
        """The rows of the global batch this rank trains on; ValueError when they do not divide evenly."""
        if global_batch % self.world_size:
            raise ValueError(f"train.batch_size={global_batch} is invalid for cluster.workers_per_trial="
                             f"{self.world_size}: expected a multiple of {self.world_size} (each worker takes "
                             "an equal share of the global batch)")
        per_worker = global_batch // self.world_size
        return slice(self.rank * per_worker, (self.rank + 1) * per_worker)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model under DistributedDataParallel. Every parameter gets a gradient every step (routed
        experts live in one (E, out, in) tensor whose unused slices get zeros), so no unused-parameter
        search is needed (tests/runners/test_distributed.py holds that)."""
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise mean over ranks (SUM then divide: gloo has no AVG)."""
        out = values.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out / self.world_size

    def broadcast_float(self, value: float, device: torch.device) -> float:
        """Rank 0's `value` on every rank."""
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def gather_int(self, value: int, device: torch.device) -> list[int]:
        """`value` of every rank, in rank order."""
        local = torch.tensor([value], dtype=torch.int64, device=device)
        out = [torch.zeros_like(local) for _ in range(self.world_size)]
        dist.all_gather(out, local)
        return [int(t.item()) for t in out]


def train_on_local_processes(spec: RunSpec, workers: int) -> list[RunResult]:
    """Train `spec` data-parallel on `workers` spawned local processes (gloo on 127.0.0.1); every rank's
    RunResult, in rank order."""
    import torch.multiprocessing as mp

    from coe_sweep.trial import RunResult

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="coe_sweep_dp_") as out_dir:
        mp.spawn(_local_rank, args=(workers, port, spec, out_dir), nprocs=workers, join=True)
        return [RunResult.from_dict(torch.load(Path(out_dir) / f"rank{r}.pt", weights_only=False))
                for r in range(workers)]


def _local_rank(rank: int, workers: int, port: int, spec: RunSpec, out_dir: str) -> None:
    from runners.train import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=workers)
    try:
        result = train(spec, data_parallel=DataParallel(rank, workers))
        torch.save(result.to_dict(), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
