"""One training step of a trial, built once: forward, backward, clipping and AdamW with no host syncs,
eager or compiled, and the rule that decides whether compiling pays.

A step (`TrainStep.run`): zero_grad; (CE, CE + aux) from the model; backward; the global gradient norm
(`torch._foreach_norm`, one op for every parameter, where clip_grad_norm_ takes the per-tensor loop on
CPU); then the fused AdamW kernel, given two device tensors
    grad_scale = max(1, (norm + 1e-6) / grad_clip)  the clip of clip_grad_norm_ (grads x grad_clip /
                                                    (norm + 1e-6) when above), applied in the kernel
    found_inf  = 1 if the loss or the norm is not finite: the kernel skips the update (and undoes its
                 step count), so a NaN never reaches the weights and nothing is read back to decide it.
It returns the losses as a (2,) device tensor; runners/train.py reads them in batches, one sync per
report, so a CUDA step never waits for the device (the condition for CUDA graphs).

Compilation (`train.compile`): the loss function (forward; AOTAutograd derives the backward) goes
through `torch.compile` (`mode="reduce-overhead"` on CUDA: CUDA graphs), the optimizer stays eager
(one fused kernel already). The first EAGER_STEPS steps always run eager (the memory-measured step among
them); then `off` stays eager, `on` compiles, and `auto` compiles when the steps left pay back the
compile time: steps_left x eager_step_s x (1 - 1/speedup) > PAYBACK x compile_s, from COMPILE_COST
(measured, see there). A compile that fails logs a warning and the trial continues eager.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from coe_sweep.trial import TrainConfig
from runners.device import DeviceChoice
from runners.optim import build_optimizer, build_schedule

log = logging.getLogger(__name__)

EAGER_STEPS = 3  # steps before the compile decision: 1 allocates AdamW states, 2 is memory-measured, 3 timed
PAYBACK = 2.0  # auto compiles only when the expected saving is this many times the compile time


@dataclass(frozen=True)
class CompileCost:
    """What compiling the step costs and gains on one kind of device (measured; see COMPILE_COST)."""

    compile_s: float  # seconds to compile forward + backward (the first compiled step, minus an eager step)
    speedup: float  # eager step time / compiled step time


# CPU: benchmarks/compile_payback.py on this project's 2-core CPU (shared, load average 3-8), 1 torch
# thread, the trial's malloc settings, the 8 iso_flops configs of benchmarks/step_overhead.py (d_model
# 16-64, 1-2 layers, C 1-3), a fresh inductor cache: compile 8-22 s per config (41 s for the first one
# in a process, which also warms inductor up), speedup 1.13-1.31 in CPU time (median 1.18),
# break-even 1,500-9,300 steps. Taken here: 25 s and 1.15, so with PAYBACK 2 auto compiles a CPU
# trial when its eager steps left would take more than about 6.4 minutes.
# CUDA: not measured (no GPU here); a guess to replace once benchmarks/gpu_throughput.py has run.
COMPILE_COST = {
    "cpu": CompileCost(compile_s=25.0, speedup=1.15),
    "cuda": CompileCost(compile_s=60.0, speedup=1.5),
}


def compile_pays(mode: str, steps_left: int, eager_step_s: float, device_type: str) -> bool:
    """The `train.compile` rule (module docstring): off never, on always, auto when it pays back."""
    if mode != "auto":
        return mode == "on"
    cost = COMPILE_COST.get(device_type)
    if cost is None or cost.speedup <= 1.0:
        return False
    saved_s = steps_left * eager_step_s * (1.0 - 1.0 / cost.speedup)
    return saved_s > PAYBACK * cost.compile_s


class TrainStep:
    """The model's optimizer, schedule and loss function, and `run(batch)`: one sync-free step."""

    def __init__(self, model: nn.Module, tc: TrainConfig, total_steps: int, device: DeviceChoice) -> None:
        self.model = model
        self.device = device
        self.optimizer = build_optimizer(model, tc)
        self.schedule = build_schedule(self.optimizer, total_steps, tc)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.grad_clip = tc.grad_clip
        self.compiled = False
        self._loss: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = self._eager_loss

    def _eager_loss(self, idx_BT: torch.Tensor, targets_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.device.autocast():
            out = self.model(idx_BT, targets_BT=targets_BT)
        return out.loss, out.loss + out.aux_loss

    def compile(self, mode: str | None = "auto", backend: str = "inductor") -> bool:
        """Compile the loss function (the first call after this compiles); False, logged, on failure.

        mode "auto": "reduce-overhead" (CUDA graphs) on CUDA, the default elsewhere; other values go
        to torch.compile as they are (benchmarks compare them; tests use backend="aot_eager")."""
        if mode == "auto":
            mode = "reduce-overhead" if self.device.device.type == "cuda" else None
        try:
            self._loss = torch.compile(self._eager_loss, mode=mode, backend=backend, dynamic=False)
        except Exception as e:  # noqa: BLE001 - a trial runs eager rather than fail for its compiler
            log.warning("torch.compile unavailable (%s: %s); the trial runs eager", type(e).__name__, e)
            return False
        self.compiled = True
        return True

    def run(self, batch_BT1: torch.Tensor) -> torch.Tensor:
        """One step on a (B, T+1) batch; returns [CE, CE + aux] as a (2,) fp32 device tensor (no sync)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.compiled and self.device.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # outputs of the previous replay may be overwritten
        try:
            ce, total = self._loss(batch_BT1[:, :-1], batch_BT1[:, 1:])
        except Exception as e:
            if not self.compiled or not _is_compile_error(e):
                raise
            log.warning("compiled step failed (%s: %s); the trial continues eager", type(e).__name__, e)
            self._loss, self.compiled = self._eager_loss, False
            ce, total = self._loss(batch_BT1[:, :-1], batch_BT1[:, 1:])
        total.backward()
        losses_2 = torch.stack((ce.detach(), total.detach()))
        grads = [p.grad for p in self.params if p.grad is not None]
        check = losses_2[1]
        # fused AdamW reads `grad_scale` and `found_inf` off the optimizer (the GradScaler protocol):
        # it divides the gradients by grad_scale and skips the step where found_inf is 1, on the device
        opt: Any = self.optimizer
        opt.grad_scale = None
        if self.grad_clip > 0 and grads:
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            opt.grad_scale = ((norm + 1e-6) / self.grad_clip).clamp_(min=1.0)
            check = check + norm
        opt.found_inf = torch.logical_not(torch.isfinite(check)).float()
        opt.step()
        opt.grad_scale = opt.found_inf = None  # step-local: hold nothing after it
        self.schedule.step()
        return losses_2

    def timed_eager_step_s(self, batch_BT1: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Run one step and time it to the end of its device work (one sync: the compile decision only)."""
        _synchronize(self.device.device)
        t0 = time.perf_counter()
        losses_2 = self.run(batch_BT1)
        _synchronize(self.device.device)
        return losses_2, time.perf_counter() - t0


def _is_compile_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("torch._dynamo", "torch._inductor")) or "BackendCompilerFailed" in type(exc).__name__


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
