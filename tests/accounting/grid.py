"""The configuration grid shared by the accounting tests (tiny models)."""

from __future__ import annotations

import itertools
from typing import Any

from coe_sweep.model.config import ModelConfig

TINY: dict[str, Any] = dict(vocab_size=64, max_seq_len=16, d_model=32, n_heads=4, d_expert=16)


def grid_configs() -> list[ModelConfig]:
    """C in {1,2,3} x K in {1,2,4} x shared {0,1} x routers {independent, shared}, with N, L, GQA and
    tied embeddings cycled through the product, plus dense-mode configurations."""
    configs = []
    product = itertools.product((1, 2, 3), (1, 2, 4), (0, 1), ("independent", "shared"))
    for i, (c, k, shared, router_mode) in enumerate(product):
        configs.append(ModelConfig(**TINY, iterations=c, top_k=k, n_shared=shared, router_mode=router_mode,
                                   n_experts=(4, 8)[i % 2], n_layers=(1, 2)[(i // 2) % 2],
                                   n_kv_heads=(None, 2)[(i // 3) % 2], tie_embeddings=i % 5 == 0))
    for c, n, tied in ((1, 1, False), (2, 2, True), (3, 4, False)):
        configs.append(ModelConfig(**TINY, dense=True, iterations=c, n_experts=n, top_k=n, n_layers=2,
                                   tie_embeddings=tied))
    # heads given by head_dim (heads follow width): 48 / 16 = 3 heads, with and without GQA
    no_heads = {k: v for k, v in TINY.items() if k != "n_heads"}
    for kv in (None, 1):
        configs.append(ModelConfig(**{**no_heads, "d_model": 48}, head_dim=16, n_kv_heads=kv, iterations=2,
                                   top_k=2, n_experts=4))
    return configs


def config_id(cfg: ModelConfig) -> str:
    mode = "dense" if cfg.dense else f"K{cfg.top_k}-{cfg.router_mode[:3]}"
    return (f"C{cfg.iterations}-N{cfg.n_experts}-{mode}-S{cfg.n_shared}-L{cfg.n_layers}"
            f"-H{cfg.heads}x{cfg.head_size}-kv{cfg.kv_heads}{'-tied' if cfg.tie_embeddings else ''}")


GRID = grid_configs()
