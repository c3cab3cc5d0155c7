"""CoELM: config validation, parameter layout, residual switches, attention paths, GQA, outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from coe_sweep.model.config import ModelConfig
from coe_sweep.model.lm import CoELM, LMOutput

SMALL = ModelConfig(vocab_size=50, max_seq_len=16, d_model=32, n_layers=2, n_heads=4, d_expert=16,
                    n_experts=6, top_k=2, n_shared=1, iterations=2)


@pytest.mark.parametrize("overrides, field", [
    ({"top_k": 7, "n_experts": 6}, "top_k"),
    ({"d_model": 30, "n_heads": 4}, "d_model"),
    ({"iterations": 0}, "iterations"),
    ({"n_kv_heads": 3}, "n_kv_heads"),
    ({"dispatch": "bmm"}, "dispatch"),
    ({"router_mode": "tied"}, "router_mode"),
    ({"dense": True, "top_k": 2}, "top_k"),
    ({"n_shared": -1}, "n_shared"),
    ({"n_heads": None, "head_dim": 12}, "d_model"),  # 32 is not a multiple of 12
    ({"n_heads": 4, "head_dim": 16}, "n_heads"),  # both given and 4 x 16 != 32
    ({"n_heads": None, "head_dim": 0}, "head_dim"),
    ({"n_heads": 32}, "d_model"),  # head size 1: odd, rotary needs pairs
])
def test_invalid_config_raises_value_error_naming_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"ModelConfig\.{field}="):
        replace(SMALL, **overrides)


def test_heads_follow_width_when_head_dim_is_given() -> None:
    by_dim = [replace(SMALL, n_heads=None, head_dim=16, d_model=d) for d in (16, 32, 64)]
    assert [(c.heads, c.head_size) for c in by_dim] == [(1, 16), (2, 16), (4, 16)]
    assert (replace(SMALL, n_heads=None).heads, replace(SMALL, n_heads=None).head_size) == (4, 8)  # default 4 heads
    both = replace(SMALL, n_heads=2, head_dim=16)  # both given and agreeing: accepted
    assert (both.heads, both.head_size, both.kv_heads) == (2, 16, 2)
    m = CoELM(replace(SMALL, n_heads=None, head_dim=16, d_model=64))
    assert m.layers[0].attn.wqkv.weight.shape == ((4 + 2 * 4) * 16, 64)
    with pytest.raises(ValueError, match=r"ModelConfig\.d_model=40 is invalid: expected a multiple of head_dim=16"):
        replace(SMALL, n_heads=None, head_dim=16, d_model=40)


def test_parameter_layout_matches_the_contract() -> None:
    cfg = replace(SMALL, n_kv_heads=2)
    m = CoELM(cfg)
    D, V, N, Fw, L, hd = cfg.d_model, cfg.vocab_size, cfg.n_experts, cfg.d_expert, cfg.n_layers, cfg.head_size
    expected = {"tok_emb.weight": (V, D), "norm.weight": (D,), "lm_head.weight": (V, D)}
    for i in range(L):
        p = f"layers.{i}."
        expected |= {p + "attn_norm.weight": (D,), p + "attn.wqkv.weight": ((4 + 2 * 2) * hd, D),
                     p + "attn.wo.weight": (D, 4 * hd), p + "ffn_norm.weight": (D,),
                     p + "ffn.routers.0.weight": (N, D), p + "ffn.routers.1.weight": (N, D),
                     p + "ffn.experts.w_gate_up_E2FD": (N, 2 * Fw, D),
                     p + "ffn.experts.w_down_EDF": (N, D, Fw), p + "ffn.shared.w_gate_up.weight": (2 * Fw, D),
                     p + "ffn.shared.w_down.weight": (D, Fw)}
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == expected
    assert not list(m.state_dict().keys() - expected.keys())  # rotary tables are not state
    tied = CoELM(replace(cfg, tie_embeddings=True, n_shared=0))
    names = {n for n, _ in tied.named_parameters()}
    assert "lm_head.weight" not in names and not any(".shared." in n for n in names)


def test_init_std() -> None:
    m = CoELM(replace(SMALL, d_model=64, n_experts=16, d_expert=64))
    w = m.layers[0].ffn.experts.w_gate_up_E2FD
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    assert torch.equal(m.layers[0].attn_norm.weight, torch.ones(64))


def test_forward_outputs_loss_and_aux(probe_loss: Callable) -> None:
    m = CoELM(replace(SMALL, aux_loss_alpha=0.01))
    idx = torch.randint(0, 50, (3, 16))
    out = m(idx, idx.roll(-1, 1), return_stats=True)
    assert isinstance(out, LMOutput) and out.logits.shape == (3, 16, 50)
    ce = F.cross_entropy(out.logits.reshape(-1, 50), idx.roll(-1, 1).reshape(-1))
    torch.testing.assert_close(out.loss, ce)
    assert len(out.aux_losses) == 2 * 2
    torch.testing.assert_close(out.aux_loss, sum(out.aux_losses))
    assert 0.005 < out.aux_loss.item() / 4 < 0.05  # alpha * ~1 per router per iteration at init
    assert len(out.stats) == 2 and all(len(layer) == 2 for layer in out.stats)
    (out.loss + out.aux_loss).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    assert m(idx).loss is None and m(idx).stats == []


def test_dense_model_has_zero_aux_loss() -> None:
    m = CoELM(replace(SMALL, dense=True, top_k=6))
    out = m(torch.randint(0, 50, (2, 8)), return_stats=True)
    assert out.aux_loss.item() == 0.0 and out.aux_losses == [] and out.stats == [[], []]


def test_grouped_equals_loop_for_the_whole_lm() -> None:
    a = CoELM(replace(SMALL, iterations=3))
    b = CoELM(replace(SMALL, iterations=3, dispatch="loop"))
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 50, (2, 16))
    oa, ob = a(idx, idx), b(idx, idx)
    torch.testing.assert_close(oa.logits, ob.logits, rtol=1e-5, atol=1e-5)
    (oa.loss + oa.aux_loss).backward()
    (ob.loss + ob.aux_loss).backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_outer_residual_adds_the_attention_output_back(probe_loss: Callable) -> None:
    off = CoELM(replace(SMALL, n_layers=1))
    on = CoELM(replace(SMALL, n_layers=1, outer_residual=True))
    on.load_state_dict(off.state_dict())
    block_off, block_on = off.layers[0], on.layers[0]
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        h = x + block_off.attn(block_off.attn_norm(x))
        u_c = block_off.ffn(block_off.ffn_norm(h)).u_BTD
        torch.testing.assert_close(block_off(x)[0], u_c)  # reference code: NO outer residual
        torch.testing.assert_close(block_on(x)[0], u_c + h)


def test_sdpa_equals_explicit_attention() -> None:
    for kv in (None, 2, 1):
        a = CoELM(replace(SMALL, n_kv_heads=kv))
        b = CoELM(replace(SMALL, n_kv_heads=kv, attention_impl="explicit"))
        b.load_state_dict(a.state_dict())
        idx = torch.randint(0, 50, (2, 16))
        torch.testing.assert_close(a(idx).logits, b(idx).logits, rtol=1e-5, atol=1e-5)


def test_gqa_equals_mha_with_repeated_kv_heads() -> None:
    gqa = CoELM(replace(SMALL, n_kv_heads=2))
    mha = CoELM(SMALL)
    state = gqa.state_dict()
    hd = SMALL.head_size
    for i in range(SMALL.n_layers):  # wqkv rows: 4 q heads, then 2 k heads, then 2 v heads
        key = f"layers.{i}.attn.wqkv.weight"
        q, k, v = state[key].view(8, hd, 32).split([4, 2, 2])
        state[key] = torch.cat([q, k.repeat_interleave(2, dim=0), v.repeat_interleave(2, dim=0)]).reshape(12 * hd, 32)
    mha.load_state_dict(state)
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(gqa(idx).logits, mha(idx).logits, rtol=1e-5, atol=1e-5)


def test_attention_is_causal() -> None:
    m = CoELM(replace(SMALL, n_shared=0, iterations=1))
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 50
    with torch.no_grad():
        a, b = m(idx).logits, m(changed).logits
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_too_long_sequence_raises() -> None:
    with pytest.raises(ValueError, match="max_seq_len=16"):
        CoELM(SMALL)(torch.zeros(1, 17, dtype=torch.long))


def test_bf16_autocast_cpu_forward_backward() -> None:
    m = CoELM(SMALL)
    idx = torch.randint(0, 50, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(idx, idx)
    assert torch.isfinite(out.loss)
    (out.loss + out.aux_loss).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in m.parameters())


@pytest.mark.gpu
def test_cuda_bf16_grouped_equals_loop() -> None:
    a = CoELM(replace(SMALL, d_model=64, d_expert=32)).cuda()
    b = CoELM(replace(SMALL, d_model=64, d_expert=32, dispatch="loop")).cuda()
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 50, (4, 16), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        oa, ob = a(idx, idx), b(idx, idx)
    torch.testing.assert_close(oa.loss, ob.loss, rtol=2e-2, atol=2e-2)
    (oa.loss + oa.aux_loss).backward()
    assert all(p.grad is not None for p in a.parameters())
