"""Routed experts: grouped_mm dispatch == per-expert loop (outputs and grads), dense mode, bf16."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from coe_sweep.model.experts import RoutedExperts
from coe_sweep.model.layers import init_weights


def _pair(E: int = 6, D: int = 16, Fw: int = 8) -> tuple[RoutedExperts, RoutedExperts]:
    grouped = RoutedExperts(E, D, Fw, "grouped")
    init_weights(grouped, 0.2)
    loop = RoutedExperts(E, D, Fw, "loop")
    loop.load_state_dict(grouped.state_dict())
    return grouped, loop


def _run(m: RoutedExperts, x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor,
         probe_loss: Callable) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    y = m(x, idx, w)
    probe_loss(y).backward()
    return y, [x.grad, w.grad] + [p.grad for p in m.parameters()]


@pytest.mark.parametrize("K, Fw", [(1, 8), (2, 8), (4, 8), (2, 6)])  # F=6: rows of 24 bytes, the loop fallback
def test_grouped_equals_loop_outputs_and_grads(K: int, Fw: int, probe_loss: Callable) -> None:
    grouped, loop = _pair(Fw=Fw)
    S = 37
    x = torch.randn(S, 16)
    idx = torch.stack([torch.randperm(5)[:K] for _ in range(S)])  # expert 5 never chosen: empty group
    w = torch.rand(S, K)
    y_g, grads_g = _run(grouped, x, idx, w, probe_loss)
    y_l, grads_l = _run(loop, x, idx, w, probe_loss)
    torch.testing.assert_close(y_g, y_l, rtol=1e-5, atol=1e-6)
    for g_g, g_l in zip(grads_g, grads_l, strict=True):
        torch.testing.assert_close(g_g, g_l, rtol=1e-5, atol=1e-6)
    assert grads_g[-1][5].abs().sum() == 0  # the unused expert gets a zero gradient


def test_one_expert_equals_dense_swiglu(probe_loss: Callable) -> None:
    grouped, loop = _pair(E=1)
    x = torch.randn(11, 16)
    idx = torch.zeros(11, 1, dtype=torch.long)
    w = torch.ones(11, 1)
    wg, wu = grouped.w_gate_up_E2FD[0].chunk(2, dim=0)
    wd = grouped.w_down_EDF[0]
    ref = F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd)
    for m in (grouped, loop):
        torch.testing.assert_close(m(x, idx, w), ref, rtol=1e-5, atol=1e-6)


def test_weights_scale_each_expert_output() -> None:
    grouped, _ = _pair(E=3)
    x = torch.randn(4, 16)
    idx = torch.tensor([[0, 2]] * 4)
    y1 = grouped(x, idx, torch.tensor([[1.0, 0.0]] * 4))
    y2 = grouped(x, idx, torch.tensor([[0.0, 1.0]] * 4))
    y12 = grouped(x, idx, torch.tensor([[2.0, -1.0]] * 4))
    torch.testing.assert_close(y12, 2 * y1 - y2, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(y1, y2)


def test_dense_mode_fused_equals_loop_and_sum_of_experts(probe_loss: Callable) -> None:
    grouped, loop = _pair(E=4)
    x = torch.randn(9, 16)
    all_idx = torch.arange(4).expand(9, 4)
    ref = grouped(x, all_idx, torch.ones(9, 4))
    xg = x.clone().requires_grad_(True)
    xl = x.clone().requires_grad_(True)
    y_g, y_l = grouped.forward_dense(xg), loop.forward_dense(xl)
    torch.testing.assert_close(y_g, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y_l, ref, rtol=1e-5, atol=1e-6)
    probe_loss(y_g).backward()
    probe_loss(y_l).backward()
    torch.testing.assert_close(xg.grad, xl.grad, rtol=1e-5, atol=1e-6)
    for pg, pl in zip(grouped.parameters(), loop.parameters(), strict=True):
        torch.testing.assert_close(pg.grad, pl.grad, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_on_cpu_runs_and_tracks_fp32(probe_loss: Callable) -> None:
    grouped, _ = _pair(E=4, D=32, Fw=16)
    x = torch.randn(64, 32)
    idx = torch.stack([torch.randperm(4)[:2] for _ in range(64)])
    w = torch.rand(64, 2)
    ref = grouped(x, idx, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = grouped(x, idx, w)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.02)
    probe_loss(y.float()).backward()
    assert grouped.w_down_EDF.grad is not None and grouped.w_down_EDF.grad.dtype == torch.float32


def test_cpu_token_chunking_is_exact(monkeypatch: pytest.MonkeyPatch, probe_loss: Callable) -> None:
    import coe_sweep.model.experts as experts_mod

    grouped, loop = _pair()
    S, K = 37, 2
    x = torch.randn(S, 16)
    idx = torch.stack([torch.randperm(6)[:K] for _ in range(S)])
    w = torch.rand(S, K)
    y_ref, grads_ref = _run(grouped, x, idx, w, probe_loss)
    monkeypatch.setattr(experts_mod, "CPU_CHUNK_BYTES", 16 * 4 * K * 8)  # 8 tokens per chunk: 5 chunks
    grouped.zero_grad()
    y_chunked, grads_chunked = _run(grouped, x, idx, w, probe_loss)
    y_loop, _ = _run(loop, x, idx, w, probe_loss)
    torch.testing.assert_close(y_chunked, y_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y_chunked, y_loop, rtol=1e-5, atol=1e-6)
    for g_c, g_r in zip(grads_chunked, grads_ref, strict=True):
        torch.testing.assert_close(g_c, g_r, rtol=1e-5, atol=1e-6)


def test_custom_ops_pass_opcheck_and_equal_the_eager_function(probe_loss: Callable) -> None:
    """torch.library.opcheck: schema, fake (meta) implementation and autograd registration of the
    dispatch op; and the custom op (the compiled path) equals the autograd Function (the eager path)."""
    from coe_sweep.model.dispatch import _RoutedFFN, routed_ffn

    E, D, Fw, S, K = 5, 8, 12, 13, 2
    args = (torch.randn(S, D, requires_grad=True), torch.stack([torch.randperm(E)[:K] for _ in range(S)]),
            torch.rand(S, K, requires_grad=True), (0.3 * torch.randn(E, 2 * Fw, D)).requires_grad_(True),
            (0.3 * torch.randn(E, D, Fw)).requires_grad_(True))
    torch.library.opcheck(routed_ffn, args)
    y_op = routed_ffn(*args)[0]
    grads_op = torch.autograd.grad(probe_loss(y_op), [a for a in args if a.requires_grad])
    y_fn = _RoutedFFN.apply(*args)
    grads_fn = torch.autograd.grad(probe_loss(y_fn), [a for a in args if a.requires_grad])
    torch.testing.assert_close(y_op, y_fn, rtol=0, atol=0)
    for g_op, g_fn in zip(grads_op, grads_fn, strict=True):
        torch.testing.assert_close(g_op, g_fn, rtol=0, atol=0)
