"""Where and in what precision a trial runs: device choice, autocast, CPU threads, the CPU allocator,
the device's peak FLOP/s.

CUDA when present (bf16 autocast by default), CPU otherwise (fp32 by default, thread count from the
trial's resources). The peak table holds dense bf16 tensor-core FLOP/s from the vendors' data sheets
(no sparsity); a GPU not in it gets no MFU rather than a guessed one.

CPU allocator (`keep_freed_memory`): by default glibc malloc serves blocks above a (dynamic) threshold
with fresh mmap pages and trims the heap top back to the OS, so a training step's megabyte-sized
activations come back as new pages every step, each paying a page fault on first touch. On this
project's machine (a KVM guest) that tripled the time of memory-bound ops: the routed experts'
backward took 7.6 ms instead of 2.5 ms. A trial process therefore asks malloc to keep what it freed
(mmap only above 32 MiB, glibc's maximum threshold; never trim): its heap stays at the step's peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from coe_sweep.trial import TrainConfig

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h) and the values keep_freed_memory sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: blocks above are mmapped
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int: in effect, never return the heap top to the OS

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


def gpu_memory_bytes() -> int | None:
    """Total memory of this machine's first CUDA device (what `gpus_per_trial: auto` packs); None without one."""
    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)


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


def keep_freed_memory() -> bool:
    """Make glibc malloc keep freed memory for reuse (module docstring); process-wide, idempotent, like
    torch.set_num_threads. False (and nothing changed) where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not done:
        log.debug("mallopt refused the allocator settings; the CPU allocator keeps its defaults")
    return done
