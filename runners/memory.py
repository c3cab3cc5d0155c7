"""Measured memory of one training step: peak bytes and the paper's "allocated after a step".

`measure_step_memory(model, step_fn, optimizer)` runs `step_fn()` once (forward, backward and
optimizer step: whatever one training step of the caller is) and reports:

- `peak_bytes`: the most memory held by tensors at any moment during that step.
  CUDA: `torch.cuda.reset_peak_memory_stats()` before the step and
  `torch.cuda.max_memory_allocated()` after it (the caching allocator's allocated bytes, which
  include every tensor of the process on that device: a figure that is exact for the allocator,
  rounded up to its 512-byte blocks).
  CPU: the peak of live tensor-storage bytes over the step, tracked by
  `torch.distributed._tools.mem_tracker.MemTracker` (a TorchDispatchMode that sees every tensor an
  op creates and drops it when its storage is freed). Tensors that existed before the step are
  counted from the start: the model's parameters, buffers and gradients and the optimizer's
  states (`track_external`), plus any `extra_tensors` (e.g. the input batch). One tracker per step:
  MemTracker refuses a second forward of the root module inside one tracker. If MemTracker fails
  (for example a step_fn with several forwards, gradient accumulation), a plain live-storage
  TorchDispatchMode (`_LiveStorageTracker`) measures the same quantity; step_fn is then run again
  from its start, so it must tolerate that (begin with zero_grad; fetch the batch outside it).
  Sparse tensors (which have no single storage) count as their index and value tensors. Memory that kernels
  allocate internally without creating tensors (scratch buffers) and allocator overheads are
  not seen on CPU.
- `allocated_after_step_bytes`: the paper's figure (arXiv 2506.18945 reports `memory_allocated`
  after a step, about 16 bytes x params with AdamW: fp32 weights + grads + 2 states). CUDA:
  `torch.cuda.memory_allocated()` after the step. CPU: the bytes of the tensors alive after the
  step: parameters + buffers + gradients (if the step leaves them set, i.e. zero_grad is called at
  the start of the step, not the end) + optimizer states + `extra_tensors` + what step_fn returned.
  The live-storage tracker counts every tensor still alive; the MemTracker path counts exactly
  those persistent tensors (MemTracker's own hooks hold a few step tensors until it is dropped,
  which would inflate its running total). Both agree on a normal step.

The first optimizer step allocates the optimizer states, so measure a step after the first one
to see the steady-state peak (weights + states + the larger of activations and gradients).
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

log = logging.getLogger(__name__)


@dataclass
class MemoryMeasurement:
    """Bytes measured over one training step (see the module docstring for the definitions)."""

    peak_bytes: int
    allocated_after_step_bytes: int
    method: str  # "cuda" | "memtracker" | "live_storage"
    peak_by_category: dict[str, int] = field(default_factory=dict)  # MemTracker's peak snapshot (CPU)
    step_output: Any = None  # what step_fn returned (e.g. the loss), so the step is not wasted

    def as_dict(self) -> dict[str, Any]:
        return {"peak_bytes": self.peak_bytes, "allocated_after_step_bytes": self.allocated_after_step_bytes,
                "method": self.method, **{f"peak_{k}_bytes": v for k, v in self.peak_by_category.items()}}


def measure_step_memory(
    model: nn.Module,
    step_fn: Callable[[], Any],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    extra_tensors: Iterable[torch.Tensor] = (),
    method: str = "auto",
) -> MemoryMeasurement:
    """Run `step_fn()` once and measure its peak and after-step memory on the model's device.

    method: "auto" (CUDA allocator on CUDA, else MemTracker with the live-storage fallback),
    "memtracker" or "live_storage" (CPU trackers, also usable on CUDA for a tensor-level view).
    """
    accepted = ("auto", "memtracker", "live_storage")
    if method not in accepted:
        raise ValueError(f"method={method!r} is invalid: expected one of {', '.join(accepted)}")
    device = _model_device(model)
    extra = list(extra_tensors)
    if method == "auto" and device.type == "cuda":
        return _measure_cuda(step_fn, device)
    if method in ("auto", "memtracker"):
        try:
            return _measure_memtracker(model, step_fn, optimizer, extra, device)
        except NotImplementedError as exc:  # e.g. several forwards of the root module in one step
            if method == "memtracker":
                raise
            log.info("MemTracker cannot measure this step (%s); using the live-storage tracker", exc)
    return _measure_live_storage(model, step_fn, optimizer, extra)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _measure_cuda(step_fn: Callable[[], Any], device: torch.device) -> MemoryMeasurement:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = step_fn()
    torch.cuda.synchronize(device)
    return MemoryMeasurement(peak_bytes=int(torch.cuda.max_memory_allocated(device)),
                             allocated_after_step_bytes=int(torch.cuda.memory_allocated(device)),
                             method="cuda", step_output=out)


def _measure_memtracker(model: nn.Module, step_fn: Callable[[], Any], optimizer: torch.optim.Optimizer | None,
                        extra: list[torch.Tensor], device: torch.device) -> MemoryMeasurement:
    tracker = _make_memtracker()
    tracker.track_external(model, *([optimizer] if optimizer is not None else []), *extra)
    with tracker:
        out = step_fn()
    peak = tracker.get_tracker_snapshot("peak").get(device, {})
    by_category = {str(getattr(k, "value", k)).lower(): int(v) for k, v in peak.items() if k != "Total"}
    # MemTracker's own module hooks keep a few step tensors referenced until it is dropped, so its
    # "current" total overstates what a step leaves behind; count the persistent tensors instead.
    after = _persistent_bytes(model, optimizer, extra, out)
    return MemoryMeasurement(peak_bytes=int(peak.get("Total", 0)), allocated_after_step_bytes=after,
                             method="memtracker", peak_by_category=by_category, step_output=out)


def _persistent_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None, extra: list[torch.Tensor],
                      out: Any) -> int:
    """Bytes of the distinct storages of parameters, buffers, grads, optimizer states, extra tensors
    and the tensors step_fn returned."""
    tensors = _existing_tensors(model, optimizer, extra)
    tree_map_only(torch.Tensor, tensors.append, out)
    storages = {id(st): st.nbytes() for t in tensors for part in _dense_parts(t)
                for st in (part.untyped_storage(),)}
    return sum(storages.values())


_SPARSE_PARTS = {
    torch.sparse_coo: ("_indices", "_values"),
    torch.sparse_csr: ("crow_indices", "col_indices", "values"),
    torch.sparse_bsr: ("crow_indices", "col_indices", "values"),
    torch.sparse_csc: ("ccol_indices", "row_indices", "values"),
    torch.sparse_bsc: ("ccol_indices", "row_indices", "values"),
}


def _dense_parts(t: torch.Tensor) -> list[torch.Tensor]:
    """The strided tensors holding `t`'s memory: itself, or a sparse tensor's index/value tensors."""
    parts = _SPARSE_PARTS.get(t.layout)
    return [t] if parts is None else [getattr(t, name)() for name in parts]


def _make_memtracker() -> Any:
    """MemTracker that also counts sparse tensors (it reads `untyped_storage()`, which they lack)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    class _SparseAwareMemTracker(MemTracker):
        def _track(self, reftype: Any, t: torch.Tensor) -> None:
            for part in _dense_parts(t):
                super()._track(reftype, part)

    return _SparseAwareMemTracker()


class _LiveStorageTracker(TorchDispatchMode):
    """Live tensor-storage bytes: every storage an op returns is counted until it is freed.

    Storages are keyed by their Python object (torch keeps one per storage), watched through a
    weakref whose callback subtracts the bytes when the storage dies; `peak_bytes` is the maximum
    of the running total, checked after every op.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[weakref.ref, int]] = {}
        self.current_bytes = 0
        self.peak_bytes = 0

    def track(self, t: torch.Tensor) -> None:
        for part in _dense_parts(t):
            st = part.untyped_storage()
            key = id(st)
            if key in self._live or st.nbytes() == 0:
                continue
            nbytes = st.nbytes()
            self._live[key] = (weakref.ref(st, functools.partial(self._forget_ref, key)), nbytes)
            self.current_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)

    def _forget_ref(self, key: int, _ref: object) -> None:
        self._forget(key)

    def _forget(self, key: int) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            self.current_bytes -= entry[1]

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self.track, out)
        return out


def _measure_live_storage(model: nn.Module, step_fn: Callable[[], Any], optimizer: torch.optim.Optimizer | None,
                          extra: list[torch.Tensor]) -> MemoryMeasurement:
    tracker = _LiveStorageTracker()
    for t in _existing_tensors(model, optimizer, extra):
        tracker.track(t)
    tracker.peak_bytes = tracker.current_bytes
    # Gradients that autograd creates or steals without a dispatched op are caught by hooks.
    handles = [p.register_post_accumulate_grad_hook(lambda p: tracker.track(p.grad))
               for p in model.parameters() if p.requires_grad]
    try:
        with tracker:
            out = step_fn()
    finally:
        for h in handles:
            h.remove()
    for t in _existing_tensors(model, optimizer, []):  # states created by the step's first optimizer call
        tracker.track(t)
    return MemoryMeasurement(peak_bytes=tracker.peak_bytes, allocated_after_step_bytes=tracker.current_bytes,
                             method="live_storage", step_output=out)


def _existing_tensors(model: nn.Module, optimizer: torch.optim.Optimizer | None,
                      extra: list[torch.Tensor]) -> list[torch.Tensor]:
    tensors: list[torch.Tensor] = [*model.parameters(), *model.buffers(), *extra]
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors
