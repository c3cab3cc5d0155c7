"""The Chain-of-Experts FFN layer (arXiv 2506.18945); MoE is exactly iterations C = 1.

Semantics (../shared/DESIGN.md, "The paper, in one paragraph"):
  u_0 = ffn_norm(h)                       -- the norm is applied ONCE, before the loop, by the block
  for t in 0..C-1:                        -- C iterations, router t applied to the current iterate u_t
      f_t = shared(u_t) + sum_{i in topk_t(u_t)} g_{t,i} * FFN_i(u_t)
      u_{t+1} = u_t + f_t   if inner_residual else f_t
  layer output = u_C (+ h only if outer_residual; the block adds it, see lm.Block)
The shared expert is ungated and runs every iteration; every router has its own aux loss per
iteration (one router reused C times in router_mode="shared"). Dense mode: no router, all N experts
with weight 1 every iteration. Dropless: every token-slot is computed.
Parameters: `routers` (cfg.n_routers x Linear(D, N)), `experts` (RoutedExperts), `shared`
(SwiGLU of width n_shared*F, absent when n_shared == 0).
Routing statistics (`return_stats=True`, eval only) are the only part that reads anything back to
the host; a training forward never syncs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from coe_sweep.model.config import ModelConfig
from coe_sweep.model.experts import RoutedExperts
from coe_sweep.model.layers import SwiGLU, init_weights
from coe_sweep.model.router import route, router_entropy, topk_overlap


@dataclass
class ChainOutput:
    u_BTD: torch.Tensor
    aux_losses: list[torch.Tensor]  # one alpha-scaled loss per iteration (empty in dense mode)
    stats: list[dict[str, Any]] = field(default_factory=list)  # per iteration, when requested


class ChainOfExperts(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D, N = cfg.d_model, cfg.n_experts
        self.routers = nn.ModuleList(nn.Linear(D, N, bias=False) for _ in range(cfg.n_routers))
        self.experts = RoutedExperts(N, D, cfg.d_expert, cfg.dispatch)
        self.shared = SwiGLU(D, cfg.n_shared * cfg.d_expert) if cfg.n_shared > 0 else None
        init_weights(self, cfg.init_std)

    def router_for(self, t: int) -> nn.Linear:
        router = self.routers[t if self.cfg.router_mode == "independent" else 0]
        assert isinstance(router, nn.Linear)
        return router

    def forward(self, u_BTD: torch.Tensor, return_stats: bool = False) -> ChainOutput:
        cfg = self.cfg
        B, T, D = u_BTD.shape
        aux_losses: list[torch.Tensor] = []
        chosen: list[torch.Tensor] = []
        stats: list[dict[str, Any]] = []
        for t in range(cfg.iterations):
            u_SD = u_BTD.reshape(B * T, D)
            if cfg.dense:
                f_SD = self.experts.forward_dense(u_SD)
            else:
                r = route(u_BTD, self.router_for(t).weight, top_k=cfg.top_k,
                          renormalize=cfg.renormalize_topk, routed_scaling=cfg.routed_scaling,
                          aux_alpha=cfg.aux_loss_alpha, uniform=cfg.uniform_routing)
                aux_losses.append(r.aux_loss)
                f_SD = self.experts(u_SD, r.topk_idx_SK, r.weights_SK)
                if return_stats:
                    chosen.append(r.topk_idx_SK.detach())
                    stats.append(_iteration_stats(r.scores_SN.detach(), r.topk_idx_SK.detach(), cfg.n_experts))
            if self.shared is not None:
                f_SD = f_SD + self.shared(u_SD)
            f_BTD = f_SD.view(B, T, D)
            u_BTD = u_BTD + f_BTD if cfg.inner_residual else f_BTD
        for t in range(len(stats) - 1):
            stats[t]["overlap_next"] = float(topk_overlap(chosen[t], chosen[t + 1]))
        return ChainOutput(u_BTD, aux_losses, stats)


def _iteration_stats(scores_SN: torch.Tensor, topk_idx_SK: torch.Tensor, n_experts: int) -> dict[str, Any]:
    return {
        "tokens_per_expert": torch.bincount(topk_idx_SK.reshape(-1), minlength=n_experts).cpu(),
        "entropy": float(router_entropy(scores_SN.float())),
        "overlap_next": None,  # filled for t < C-1: overlap of experts chosen at t and t+1
    }
