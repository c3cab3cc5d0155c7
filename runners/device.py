"""Where and in what precision a trial runs: device choice, autocast, CPU threads, the device's peak FLOP/s.

CUDA when present (bf16 autocast by default), CPU otherwise (fp32 by default, thread count from the
trial's resources). The peak table holds dense bf16 tensor-core FLOP/s from the vendors' data sheets
(no sparsity); a GPU not in it gets no MFU rather than a guessed one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from coe_sweep.trial import TrainConfig

# Dense bf16 peak FLOP/s by device-name substring; first match wins, so specific names come first.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989e12),
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM / NVL per GPU
    ("H800", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
)


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype, None for plain fp32
    name: str  # human-readable, e.g. 'cuda:0 (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads)'
    peak_flops: float | None  # dense bf16 FLOP/s of the device, CUDA only
    threads: int | None  # CPU threads used, None on CUDA

    @property
    def precision(self) -> str:
        return "bf16" if self.amp_dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def available_cpus() -> int:
    """CPUs this trial was given: OMP_NUM_THREADS when set (Ray sets it to a task's num_cpus), capped by
    the CPUs this process may run on (affinity / cgroup cpuset)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) >= 1:
        return min(int(omp), usable)
    return usable


def resolve_device(tc: TrainConfig) -> DeviceChoice:
    """Pick the device and precision for `tc`; ValueError when CUDA is asked for but absent."""
    if tc.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device='cuda' is invalid here: torch.cuda.is_available() is False; "
                         "expected 'auto' or 'cpu' on this machine")
    use_cuda = tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available())
    bf16 = tc.dtype == "bf16" or (tc.dtype == "auto" and use_cuda)
    amp_dtype = torch.bfloat16 if bf16 else None
    if use_cuda:
        device = torch.device("cuda", torch.cuda.current_device())
        gpu = torch.cuda.get_device_name(device)
        return DeviceChoice(device, amp_dtype, f"{device} ({gpu})", peak_bf16_flops(gpu), None)
    threads = tc.threads or available_cpus()
    return DeviceChoice(torch.device("cpu"), amp_dtype, f"cpu ({threads} threads)", None, threads)


def peak_bf16_flops(device_name: str) -> float | None:
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in device_name.lower():
            return flops
    return None


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` intra-op threads (None: leave as is), restoring the previous count after."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
