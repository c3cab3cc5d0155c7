"""What one trial reserves on the cluster: its data-parallel workers and each worker's CPUs and GPUs, with
`cluster.gpus_per_trial: auto` resolved here (pure planning: the spec, the planned trials' memory
estimates and the memory of one GPU in; numbers out).

    workers          = cluster.trial_workers (workers_per_trial, else whole gpus_per_trial above 1)
    cpus_per_worker  = cpus_per_trial / workers           (cpus_per_trial is the trial's total)
    gpus_per_worker  = gpus_per_trial / workers           (so gpus_per_trial: 4 is 4 workers of 1 GPU)
    auto             = 1 / n, n = floor(gpu_memory / (largest estimate x AUTO_HEADROOM + CUDA_CONTEXT_BYTES)),
                       clamped to 1 .. MAX_TRIALS_PER_GPU; 0 without a GPU (gpu_memory unknown or 0)

The largest estimate is coe_sweep.accounting's memory estimate (weights, grads, AdamW states,
activations) of the largest feasible candidate of any budget: every trial the sweep may start fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coe_sweep.search.candidates import budgets, plan_trial

if TYPE_CHECKING:
    from coe_sweep.spec.schema import SweepSpec

# The estimate counts tensors; a process also holds the allocator's rounding and fragmentation (blocks are
# rounded to 512 B / 2 MiB segments, freed blocks are cached): 25% on top of the estimate.
AUTO_HEADROOM = 1.25
# Each trial process on a GPU holds its own CUDA context and kernels (~300-600 MiB on recent GPUs/drivers).
CUDA_CONTEXT_BYTES = 512 * 2**20
# Beyond this, trials on one GPU contend for its SMs and the host's CPUs more than they gain from sharing.
MAX_TRIALS_PER_GPU = 8


@dataclass(frozen=True)
class TrialResources:
    """One trial's reservation: `workers` Ray workers of `cpus_per_worker` CPUs and `gpus_per_worker` GPUs."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    trials_per_gpu: int | None = None  # gpus_per_trial: auto resolved to 1 / trials_per_gpu (None: not auto)

    @property
    def cpus_per_trial(self) -> float:
        return self.workers * self.cpus_per_worker

    @property
    def gpus_per_trial(self) -> float:
        return self.workers * self.gpus_per_worker

    @property
    def data_parallel(self) -> bool:
        return self.workers > 1


def auto_gpus_per_trial(largest_trial_bytes: int, gpu_memory_bytes: int | None) -> tuple[float, int | None]:
    """(the GPU fraction of one trial, trials per GPU) for `gpus_per_trial: auto` (module docstring);
    (0.0, None) without a GPU."""
    if not gpu_memory_bytes:
        return 0.0, None
    per_trial_bytes = largest_trial_bytes * AUTO_HEADROOM + CUDA_CONTEXT_BYTES
    n = max(1, min(MAX_TRIALS_PER_GPU, math.floor(gpu_memory_bytes / per_trial_bytes)))
    return 1.0 / n, n


def largest_trial_bytes(spec: SweepSpec) -> int:
    """The largest memory estimate of a feasible candidate at any budget (0 when none is feasible)."""
    from coe_sweep.search.sweep_plan import planned_points

    points, _ = planned_points(spec)
    largest = 0
    for budget in budgets(spec):
        for point in points:
            plan = plan_trial(spec, budget, point)
            if plan.feasible:
                largest = max(largest, plan.memory_bytes)
    return largest


def trial_resources(spec: SweepSpec, gpu_memory_bytes: int | None = None) -> TrialResources:
    """The reservation of each trial of `spec`. `gpu_memory_bytes` (one GPU's memory; cluster.gpu_memory
    wins when set) matters only for gpus_per_trial: auto; None or 0 there means no GPU."""
    c = spec.cluster
    workers = c.trial_workers
    cpus_per_worker = float(c.cpus_per_trial) / workers
    if c.gpus_per_trial != "auto":
        return TrialResources(workers, cpus_per_worker, float(c.gpus_per_trial) / workers)
    memory = c.gpu_memory or gpu_memory_bytes
    fraction, per_gpu = auto_gpus_per_trial(largest_trial_bytes(spec) if memory else 0, memory)
    return TrialResources(workers, cpus_per_worker, fraction, per_gpu)
