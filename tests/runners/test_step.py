"""runners.step: the sync-free training step (clipping and the non-finite skip inside fused AdamW), the
compile rule, and on CUDA a step that never syncs and that CUDA graphs capture."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch

from coe_sweep.model.config import ModelConfig
from coe_sweep.model.lm import CoELM
from coe_sweep.trial import TrainConfig
from runners.device import resolve_device
from runners.optim import build_optimizer
from runners.step import COMPILE_COST, PAYBACK, TrainStep, compile_pays

CFG = ModelConfig(vocab_size=40, max_seq_len=16, d_model=32, head_dim=16, n_layers=2, d_expert=16, n_experts=4,
                  top_k=2, iterations=2, init_std=0.1)
TC = TrainConfig(lr=1e-2, warmup_steps=0, grad_clip=0.05, device="cpu", threads=1)


def _stepper(tc: TrainConfig = TC, cfg: ModelConfig = CFG) -> TrainStep:
    torch.manual_seed(0)
    model = CoELM(cfg).to(tc.device if tc.device != "auto" else "cpu")
    return TrainStep(model, tc, total_steps=10, device=resolve_device(tc))


def _batch(device: str = "cpu") -> torch.Tensor:
    return torch.randint(0, CFG.vocab_size, (4, CFG.max_seq_len + 1), generator=torch.Generator().manual_seed(1)).to(device)


def test_step_equals_clip_grad_norm_then_fused_adamw() -> None:
    """The clip applied inside the fused kernel (grad_scale) is clip_grad_norm_'s clip."""
    stepper = _stepper()
    reference = CoELM(CFG)
    reference.load_state_dict(stepper.model.state_dict())
    optimizer = build_optimizer(reference, TC)
    batch = _batch()
    for _ in range(3):
        losses = stepper.run(batch)
        optimizer.zero_grad(set_to_none=True)
        out = reference(batch[:, :-1], targets_BT=batch[:, 1:])
        (out.loss + out.aux_loss).backward()
        norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), TC.grad_clip)
        assert norm > TC.grad_clip  # the clip is active in this test
        optimizer.step()
        torch.testing.assert_close(losses, torch.stack((out.loss, out.loss + out.aux_loss)).detach())
    # atol 1e-6 = 1e-4 of one update (lr 1e-2): the kernel divides by the clip factor where clip_grad_norm_
    # multiplies by its reciprocal, one rounding per element that Adam's normalisation can amplify
    # where the second moment is tiny (measured: at most 2.3e-7 after three steps)
    for (name, p), q in zip(stepper.model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_a_non_finite_loss_skips_the_update_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    stepper = _stepper()
    batch = _batch()
    stepper.run(batch)  # AdamW states exist
    before = {n: p.detach().clone() for n, p in stepper.model.named_parameters()}
    steps_before = [s["step"].item() for s in stepper.optimizer.state.values()]
    original = CoELM.forward

    def nan_forward(self: CoELM, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(CoELM, "forward", nan_forward)
    losses = stepper.run(batch)
    assert torch.isnan(losses).all()
    for n, p in stepper.model.named_parameters():
        assert torch.equal(p, before[n]), n
    assert [s["step"].item() for s in stepper.optimizer.state.values()] == steps_before  # count undone
    monkeypatch.setattr(CoELM, "forward", original)
    stepper.run(batch)
    assert not torch.equal(next(stepper.model.parameters()), next(iter(before.values())))  # trains on


def test_the_compile_rule() -> None:
    cost = COMPILE_COST["cpu"]
    saving_per_step_s = 0.1 * (1 - 1 / cost.speedup)
    break_even_steps = PAYBACK * cost.compile_s / saving_per_step_s
    assert not compile_pays("auto", int(break_even_steps * 0.9), 0.1, "cpu")
    assert compile_pays("auto", int(break_even_steps * 1.1), 0.1, "cpu")
    assert compile_pays("on", 1, 0.001, "cpu") and not compile_pays("off", 10**9, 10.0, "cpu")
    assert not compile_pays("auto", 10**9, 10.0, "mps")  # no measured cost: never guess


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_step_trains_like_the_eager_step(backend: str) -> None:
    torch._dynamo.reset()
    eager, compiled = _stepper(), _stepper()
    assert compiled.compile(backend=backend) and compiled.compiled
    batch = _batch()
    for _ in range(2):  # inductor: fused kernels reorder reductions, ~1e-6 relative in fp32
        torch.testing.assert_close(compiled.run(batch), eager.run(batch), rtol=1e-4, atol=1e-6)
    for p, q in zip(compiled.model.parameters(), eager.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", [False, True])
def test_cuda_step_never_syncs_with_the_host(compiled: bool) -> None:
    tc = replace(TC, device="cuda", dtype="bf16", threads=None)
    stepper = _stepper(tc)
    batch = _batch("cuda")
    if compiled:
        stepper.compile()
    for _ in range(3):  # compile, graph recording and warm-up happen in the first steps
        stepper.run(batch)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync inside a step raises
    try:
        for _ in range(3):
            stepper.run(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


@pytest.mark.gpu
def test_cuda_compiled_step_is_captured_by_cuda_graphs() -> None:
    from torch._dynamo.utils import counters

    counters.clear()
    tc = replace(TC, device="cuda", dtype="bf16", threads=None)
    stepper = _stepper(tc)
    assert stepper.compile()
    batch = _batch("cuda")
    losses = [stepper.run(batch) for _ in range(4)]
    assert counters["inductor"]["cudagraph_skips"] == 0, dict(counters["inductor"])
    assert torch.isfinite(torch.stack(losses)).all()
