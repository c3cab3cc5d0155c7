"""Forward FLOPs per token against torch's FlopCounterMode, term by term, and the training rules.

Measured on the loop-dispatch, explicit-attention path (FlopCounterMode counts 0 for grouped_mm
and for SDPA on CPU). Both sides count the full T x T attention products (causal=False).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from coe_sweep.accounting import (
    TRAIN_FLOPS_MULTIPLIER,
    forward_flops_per_token,
    param_counts,
    six_n_flops_per_token,
    tokens_for_flops,
    train_flops_per_token,
)
from coe_sweep.model.config import ModelConfig
from coe_sweep.model.lm import CoELM

from .grid import GRID, TINY, config_id

BATCH, SEQ = 2, 16


def _measured_terms(cfg: ModelConfig) -> tuple[float, dict[str, float]]:
    """Total forward FLOPs per token and the same six terms, from FlopCounterMode's module tree."""
    cfg = dataclasses.replace(cfg, dispatch="loop", attention_impl="explicit")
    torch.manual_seed(0)
    model = CoELM(cfg)
    idx = torch.randint(0, cfg.vocab_size, (BATCH, SEQ))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(idx)
    by_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    tokens = BATCH * SEQ

    def at(name: str) -> float:
        return by_module.get(f"CoELM.{name}", 0) / tokens

    layers = range(cfg.n_layers)
    proj = sum(at(f"layers.{i}.attn.{w}") for i in layers for w in ("wqkv", "wo"))
    attn = sum(at(f"layers.{i}.attn") for i in layers)
    ffn = sum(at(f"layers.{i}.ffn") for i in layers)
    experts = sum(at(f"layers.{i}.ffn.experts") for i in layers)
    shared = sum(at(f"layers.{i}.ffn.shared") for i in layers)
    if cfg.dense:  # forward_dense is a method call, so FlopCounterMode books the experts under ffn
        experts = ffn - shared
    terms = {"attention_proj": proj, "attention_scores": attn - proj, "routers": ffn - experts - shared,
             "routed_experts": experts, "shared_experts": shared,
             "lm_head": by_module["Global"] / tokens - sum(at(f"layers.{i}") for i in layers)}
    return by_module["Global"] / tokens, terms


@pytest.mark.parametrize("cfg", GRID, ids=config_id)
def test_forward_flops_match_flop_counter(cfg: ModelConfig) -> None:
    measured_total, measured_terms = _measured_terms(cfg)
    analytic = forward_flops_per_token(cfg, SEQ)
    assert analytic.total == pytest.approx(measured_total, rel=0.02)
    for name, value in measured_terms.items():
        assert getattr(analytic, name) == pytest.approx(value, rel=0.02, abs=1e-9), name


def _cfg(**kw: object) -> ModelConfig:
    return ModelConfig(**{**TINY, "n_layers": 2, "n_experts": 8, "n_shared": 1, **kw})


def test_router_and_shared_expert_run_every_iteration() -> None:
    one = forward_flops_per_token(_cfg(iterations=1, top_k=4), SEQ)
    for mode in ("independent", "shared"):
        three = forward_flops_per_token(_cfg(iterations=3, top_k=4, router_mode=mode), SEQ)
        assert three.routers == 3 * one.routers > 0
        assert three.shared_experts == 3 * one.shared_experts > 0
        assert three.routed_experts == 3 * one.routed_experts
        assert three.attention_proj == one.attention_proj and three.lm_head == one.lm_head
    # the paper's iso-compute pair (C*K equal) differs exactly by the extra routers and shared experts
    moe, coe = forward_flops_per_token(_cfg(top_k=8), SEQ), forward_flops_per_token(_cfg(iterations=2, top_k=4), SEQ)
    assert coe.routed_experts == moe.routed_experts
    assert coe.total - moe.total == (coe.routers - moe.routers) + (coe.shared_experts - moe.shared_experts) > 0


def test_dense_mode_has_no_router_flops() -> None:
    dense = forward_flops_per_token(_cfg(dense=True, n_experts=4, top_k=4, iterations=2), SEQ)
    assert dense.routers == 0 and dense.routed_experts > 0


def test_causal_halving_is_explicit() -> None:
    cfg = _cfg()
    full, causal = forward_flops_per_token(cfg, SEQ), forward_flops_per_token(cfg, SEQ, causal=True)
    assert causal.attention_scores == pytest.approx(full.attention_scores * (SEQ + 1) / (2 * SEQ))
    assert causal.total - causal.attention_scores == full.total - full.attention_scores
    # scores grow linearly with the sequence length, the rest does not depend on it
    short = forward_flops_per_token(cfg, SEQ // 2)
    assert short.attention_scores == pytest.approx(full.attention_scores / 2)
    assert short.routed_experts == full.routed_experts


def test_train_is_three_forward_and_tokens_for_flops() -> None:
    cfg = _cfg(iterations=2, top_k=2)
    forward = forward_flops_per_token(cfg, SEQ).total
    assert TRAIN_FLOPS_MULTIPLIER == 3
    assert train_flops_per_token(cfg, SEQ) == 3 * forward
    per_token = train_flops_per_token(cfg, SEQ)
    assert tokens_for_flops(cfg, SEQ, 1000 * per_token) == 1000
    assert tokens_for_flops(cfg, SEQ, 1000.5 * per_token) == 1000
    assert tokens_for_flops(cfg, SEQ, 0.5 * per_token) == 0


def test_six_n_convention() -> None:
    moe = _cfg(top_k=2)
    assert six_n_flops_per_token(moe) == 6 * param_counts(moe).active_non_embedding
    # for MoE, 6N = 3 x 2N: the matmul terms over non-embedding parameters, minus the scores
    terms = forward_flops_per_token(moe, SEQ)
    assert six_n_flops_per_token(moe) == pytest.approx(
        3 * (terms.total - terms.attention_scores - terms.lm_head), rel=0.01)
    # for CoE, 6N counts distinct experts once, while the chain runs C*K expert applications
    coe = _cfg(iterations=4, top_k=4)  # C*K = 16 > N = 8: only 8 distinct experts
    coe_terms = forward_flops_per_token(coe, SEQ)
    assert six_n_flops_per_token(coe) < 3 * (coe_terms.total - coe_terms.attention_scores - coe_terms.lm_head)


def test_as_dict_has_terms_and_total() -> None:
    terms = forward_flops_per_token(_cfg(), SEQ)
    d = terms.as_dict()
    assert set(d) == {"attention_proj", "attention_scores", "routers", "routed_experts", "shared_experts",
                      "lm_head", "total"}
    assert d["total"] == pytest.approx(sum(v for k, v in d.items() if k != "total"))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"seq_len": 0}, "seq_len"), ({"seq_len": 17}, "max_seq_len"), ({"seq_len": 8.0}, "seq_len"),
    ({"seq_len": 8, "flops": 0}, "flops"), ({"seq_len": 8, "flops": float("inf")}, "flops"),
])
def test_bad_input_names_the_field(kwargs: dict, field: str) -> None:
    cfg = _cfg()
    with pytest.raises(ValueError, match=field):
        if "flops" in kwargs:
            tokens_for_flops(cfg, kwargs["seq_len"], kwargs["flops"])
        else:
            forward_flops_per_token(cfg, kwargs["seq_len"])
