"""torch.compile of the whole model: compiled equals eager (loss and every gradient) for C in {1, 2, 3}.

The routed-expert dispatch is a pair of torch.library custom ops (coe_sweep/model/dispatch.py); these
tests hold that dynamo traces the model in ONE graph (fullgraph=True: no graph break), that the fake
implementations give AOTAutograd the right shapes, and that the compiled forward and backward compute
what eager does.

Fast: the `aot_eager` backend (dynamo + AOTAutograd + the fake implementations, then the same aten
kernels as eager): equal to eager within 1e-5 (the same kernels; AOTAutograd may decompose an op or
order a gradient sum differently, a few fp32 roundings).
Slow: inductor (generated C++ kernels) in fp32 and under bf16 autocast. fp32: rtol 1e-4 / atol 1e-6
(fused kernels reorder reductions; measured differences ~1e-6 relative). bf16: compiled and eager
round differently (inductor keeps fused intermediates in fp32 where eager rounds every op to bf16, and
a rounding can flip a near-tie top-k choice), so both are held against the fp32 eager truth: the
compiled bf16 loss and every gradient must be as close to it as eager bf16 is (relative L2 error at
most 2x eager's + 1e-3). Measured: compiled against eager bf16 differs by up to 4.9% (a third-iteration
router gradient), which is the size of bf16's own error there.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from coe_sweep.model.config import ModelConfig
from coe_sweep.model.lm import CoELM

CFG = ModelConfig(vocab_size=64, max_seq_len=16, d_model=32, head_dim=16, n_layers=1, d_expert=16,
                  n_experts=4, top_k=2, n_shared=1, init_std=0.1)


def _loss_and_grads(model: CoELM, batch_BT1: torch.Tensor, compiled: bool, backend: str = "inductor",
                    bf16: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    def loss_fn(idx_BT: torch.Tensor, targets_BT: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(idx_BT, targets_BT=targets_BT)
        return out.loss + out.aux_loss

    fn = torch.compile(loss_fn, backend=backend, fullgraph=True, dynamic=False) if compiled else loss_fn
    model.zero_grad(set_to_none=True)
    loss = fn(batch_BT1[:, :-1], batch_BT1[:, 1:])
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _pair(iterations: int) -> tuple[CoELM, torch.Tensor]:
    torch.manual_seed(iterations)
    model = CoELM(replace(CFG, iterations=iterations))
    return model, torch.randint(0, CFG.vocab_size, (4, CFG.max_seq_len + 1))


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    torch._dynamo.reset()


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_whole_model_traces_in_one_graph_and_equals_eager(iterations: int) -> None:
    model, batch = _pair(iterations)
    loss_e, grads_e = _loss_and_grads(model, batch, compiled=False)
    loss_c, grads_c = _loss_and_grads(model, batch, compiled=True, backend="aot_eager")
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
    assert grads_c.keys() == grads_e.keys()
    for name, g in grads_e.items():
        assert g.abs().sum() > 0, name  # every parameter, each router included, gets a gradient
        torch.testing.assert_close(grads_c[name], g, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_inductor_fp32_equals_eager(iterations: int) -> None:
    model, batch = _pair(iterations)
    loss_e, grads_e = _loss_and_grads(model, batch, compiled=False)
    loss_c, grads_c = _loss_and_grads(model, batch, compiled=True)
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-4, atol=1e-6)
    for name, g in grads_e.items():
        torch.testing.assert_close(grads_c[name], g, rtol=1e-4, atol=1e-6, msg=name)


def _relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


@pytest.mark.slow
@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_inductor_bf16_is_as_close_to_fp32_as_eager_bf16(iterations: int) -> None:
    model, batch = _pair(iterations)
    loss_32, grads_32 = _loss_and_grads(model, batch, compiled=False)
    loss_e, grads_e = _loss_and_grads(model, batch, compiled=False, bf16=True)
    loss_c, grads_c = _loss_and_grads(model, batch, compiled=True, bf16=True)
    assert _relative_l2(loss_c, loss_32) <= 2 * _relative_l2(loss_e, loss_32) + 1e-3
    for name, g in grads_32.items():
        assert grads_c[name].dtype == torch.float32  # fp32 master weights, bf16 compute
        assert _relative_l2(grads_c[name], g) <= 2 * _relative_l2(grads_e[name], g) + 1e-3, name
