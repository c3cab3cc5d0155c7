"""Parameter counts against the built model, and the active-parameter definition."""

from __future__ import annotations

import dataclasses

import pytest

from coe_sweep.accounting import param_counts, params_active, params_total
from coe_sweep.model.config import ModelConfig
from coe_sweep.model.lm import CoELM

from .grid import GRID, TINY, config_id


@pytest.mark.parametrize("cfg", GRID, ids=config_id)
def test_params_total_equals_numel_of_built_model(cfg: ModelConfig) -> None:
    model = CoELM(cfg)
    assert params_total(cfg) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cfg", GRID, ids=config_id)
def test_embedding_split_matches_built_model(cfg: ModelConfig) -> None:
    model = CoELM(cfg)
    embedding = model.tok_emb.weight.numel() + (0 if model.lm_head is None else model.lm_head.weight.numel())
    counts = param_counts(cfg)
    assert counts.embedding == embedding
    assert counts.non_embedding == counts.total - embedding
    assert counts.active_non_embedding == counts.active - embedding


@pytest.mark.parametrize("cfg", GRID, ids=config_id)
def test_params_active_counts_what_one_token_can_touch(cfg: ModelConfig) -> None:
    """Rebuild `active` from the model: everything except the routed experts one token cannot reach."""
    model = CoELM(cfg)
    expert = 3 * cfg.d_model * cfg.d_expert
    reachable = min(cfg.iterations * cfg.top_k, cfg.n_experts)
    unreachable = sum((cfg.n_experts - reachable) * expert for _ in model.layers)
    assert params_active(cfg) == sum(p.numel() for p in model.parameters()) - unreachable
    assert params_active(cfg) <= params_total(cfg)


def _cfg(**kw: object) -> ModelConfig:
    return ModelConfig(**{**TINY, "n_layers": 2, "n_experts": 16, "n_shared": 1, **kw})


def test_moe_and_coe_active_relationships() -> None:
    moe_k8 = _cfg(iterations=1, top_k=8)
    coe_c2k4 = _cfg(iterations=2, top_k=4)
    # same total experts, same C*K: CoE adds one router per extra iteration and nothing else
    assert params_total(coe_c2k4) - params_total(moe_k8) == 2 * 32 * 16
    assert params_active(coe_c2k4) - params_active(moe_k8) == 2 * 32 * 16
    # a shared router is one set of parameters however many iterations use it
    assert params_total(dataclasses.replace(coe_c2k4, router_mode="shared")) == params_total(moe_k8)
    # C*K capped by N: more iterations stop adding distinct experts
    c3 = _cfg(iterations=3, top_k=8, router_mode="shared")
    c5 = _cfg(iterations=5, top_k=8, router_mode="shared")
    assert params_active(c3) == params_active(c5) == params_total(c3)
    # more iterations at fixed K can only add active params (never more than the total)
    k2 = [params_active(_cfg(iterations=c, top_k=2, router_mode="shared")) for c in (1, 2, 3, 4)]
    assert k2 == sorted(k2) and len(set(k2)) == 4
    # MoE active = total - (N - K) experts per layer
    assert params_total(moe_k8) - params_active(moe_k8) == 2 * (16 - 8) * 3 * 32 * 16


def test_dense_mode_is_all_active_and_has_no_router() -> None:
    dense = _cfg(dense=True, n_experts=4, top_k=4, iterations=2)
    assert params_active(dense) == params_total(dense)
    assert not any("routers.0" in name for name, _ in CoELM(dense).named_parameters())
