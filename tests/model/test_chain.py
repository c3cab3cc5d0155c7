"""ChainOfExperts: the paper's iteration, routers per iteration, residual switches, dense mode, stats."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from coe_sweep.model.chain import ChainOfExperts
from coe_sweep.model.config import ModelConfig
from coe_sweep.model.router import route

BASE = ModelConfig(d_model=32, n_heads=4, d_expert=16, n_experts=8, top_k=2, n_shared=1, init_std=0.1)


def _grads(m: torch.nn.Module, u: torch.Tensor, probe_loss: Callable) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    u = u.clone().requires_grad_(True)
    out = m(u)
    probe_loss(out.u_BTD + sum(out.aux_losses)).backward()
    return out.u_BTD, {"u": u.grad, **{n: p.grad for n, p in m.named_parameters()}}


@pytest.mark.parametrize("inner_residual", [False, True])
def test_one_expert_top1_one_iteration_equals_dense_swiglu(inner_residual: bool, probe_loss: Callable) -> None:
    cfg = replace(BASE, n_experts=1, top_k=1, iterations=1, n_shared=0, inner_residual=inner_residual)
    layer = ChainOfExperts(cfg)
    Fw = cfg.d_expert
    wg, wu, wd = (p.detach().clone().requires_grad_(True) for p in
                  (layer.experts.w_gate_up_E2FD[0, :Fw], layer.experts.w_gate_up_E2FD[0, Fw:],
                   layer.experts.w_down_EDF[0]))
    u = torch.randn(2, 5, 32)
    u_ref = u.clone().requires_grad_(True)
    ref = F.linear(F.silu(F.linear(u_ref, wg)) * F.linear(u_ref, wu), wd)
    if inner_residual:
        ref = u_ref + ref
    out, grads = _grads(layer, u, probe_loss)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    probe_loss(ref).backward()
    torch.testing.assert_close(grads["u"], u_ref.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads["experts.w_gate_up_E2FD"][0, :Fw], wg.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads["experts.w_gate_up_E2FD"][0, Fw:], wu.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads["experts.w_down_EDF"][0], wd.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_grouped_equals_loop_for_each_chain_length(iterations: int, probe_loss: Callable) -> None:
    cfg = replace(BASE, iterations=iterations, aux_loss_alpha=0.1)
    grouped = ChainOfExperts(cfg)
    loop = ChainOfExperts(replace(cfg, dispatch="loop"))
    loop.load_state_dict(grouped.state_dict())
    u = torch.randn(3, 7, 32)
    out_g, grads_g = _grads(grouped, u, probe_loss)
    out_l, grads_l = _grads(loop, u, probe_loss)
    torch.testing.assert_close(out_g, out_l, rtol=1e-5, atol=1e-6)
    assert set(grads_g) == set(grads_l)
    for name in grads_g:
        torch.testing.assert_close(grads_g[name], grads_l[name], rtol=1e-5, atol=1e-6, msg=name)
    assert all(grads_g[f"routers.{t}.weight"].abs().sum() > 0 for t in range(iterations))


def test_coe_two_iterations_has_two_independent_routers_and_routing_differs() -> None:
    layer = ChainOfExperts(replace(BASE, iterations=2))
    assert len(layer.routers) == 2
    assert not torch.equal(layer.routers[0].weight, layer.routers[1].weight)
    out = layer(torch.randn(2, 16, 32), return_stats=True)
    assert len(out.aux_losses) == 2
    # a different router on a different iterate: the chosen experts differ for most tokens
    assert out.stats[0]["overlap_next"] < 0.9
    assert not torch.equal(out.stats[0]["tokens_per_expert"], out.stats[1]["tokens_per_expert"])


def test_shared_router_mode_has_one_router_used_every_iteration() -> None:
    cfg = replace(BASE, iterations=3, router_mode="shared")
    layer = ChainOfExperts(cfg)
    assert len(layer.routers) == 1
    assert layer.router_for(0) is layer.router_for(2)
    out = layer(torch.randn(2, 6, 32))
    assert len(out.aux_losses) == 3


def _manual_chain(layer: ChainOfExperts, u: torch.Tensor) -> torch.Tensor:
    """The DESIGN.md recurrence written out with the layer's own router/expert/shared pieces."""
    cfg = layer.cfg
    B, T, D = u.shape
    for t in range(cfg.iterations):
        r = route(u, layer.routers[t].weight, top_k=cfg.top_k)
        f = layer.experts(u.reshape(-1, D), r.topk_idx_SK, r.weights_SK) + layer.shared(u.reshape(-1, D))
        u = (u + f.view(B, T, D)) if cfg.inner_residual else f.view(B, T, D)
    return u


@pytest.mark.parametrize("inner_residual", [True, False])
def test_inner_residual_switch_follows_the_recurrence(inner_residual: bool) -> None:
    layer = ChainOfExperts(replace(BASE, iterations=2, inner_residual=inner_residual))
    u = torch.randn(2, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(layer(u).u_BTD, _manual_chain(layer, u))
        other = ChainOfExperts(replace(layer.cfg, inner_residual=not inner_residual))
        other.load_state_dict(layer.state_dict())
        assert not torch.allclose(other(u).u_BTD, layer(u).u_BTD)


def test_dense_mode_runs_every_expert_with_weight_one() -> None:
    cfg = replace(BASE, dense=True, top_k=8, iterations=2)
    layer = ChainOfExperts(cfg)
    assert len(layer.routers) == 0
    u = torch.randn(2, 4, 32)
    with torch.no_grad():
        out = layer(u, return_stats=True)
        ref = u
        for _ in range(2):
            x = ref.reshape(-1, 32)
            ones = torch.ones(x.shape[0], 8)
            f = layer.experts(x, torch.arange(8).expand(x.shape[0], 8), ones) + layer.shared(x)
            ref = ref + f.view_as(ref)
    torch.testing.assert_close(out.u_BTD, ref, rtol=1e-5, atol=1e-6)
    assert out.aux_losses == [] and out.stats == []


def test_routing_stats_shapes_and_values() -> None:
    cfg = replace(BASE, iterations=3)
    layer = ChainOfExperts(cfg)
    B, T = 2, 9
    out = layer(torch.randn(B, T, 32), return_stats=True)
    assert len(out.stats) == 3
    for t, s in enumerate(out.stats):
        assert s["tokens_per_expert"].shape == (8,)
        assert int(s["tokens_per_expert"].sum()) == B * T * cfg.top_k
        assert 0.0 <= s["entropy"] <= math.log(8) + 1e-6
        if t < 2:
            assert 0.0 <= s["overlap_next"] <= 1.0
        else:
            assert s["overlap_next"] is None
    assert layer(torch.randn(B, T, 32)).stats == []


def test_uniform_routing_switch_balances_tokens() -> None:
    layer = ChainOfExperts(replace(BASE, uniform_routing=True))
    out = layer(torch.randn(2, 8, 32), return_stats=True)
    assert out.stats[0]["tokens_per_expert"].tolist() == [4] * 8
