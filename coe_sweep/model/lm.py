"""CoELM: the decoder-only CoE/MoE language model (Config -> Block -> LM, read top to bottom).

Block: h = x + attn(attn_norm(x)); u_0 = ffn_norm(h); u_C = ChainOfExperts(u_0);
       out = u_C + h if cfg.outer_residual else u_C.
DESIGN.md: "In the reference code the layer output is u_C with NO outer residual back to the
attention output (outer_residual=false), for MoE and CoE alike". With the default inner residual
the residual stream therefore flows through u_0 = ffn_norm(h) (u_C = u_0 + sum_t f_t); turning
`outer_residual` on adds h back (ModelConfig: "layer output u_C + h_attn").

Parameter layout (accounting counts exactly this): tok_emb (V, D); layers[i].{attn_norm,
attn.{wqkv,wo}, ffn_norm, ffn.{routers, experts, shared}}; norm; lm_head (absent when tied).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coe_sweep.model.attention import CausalSelfAttention
from coe_sweep.model.chain import ChainOfExperts
from coe_sweep.model.config import ModelConfig
from coe_sweep.model.layers import RMSNorm, init_weights


@dataclass
class LMOutput:
    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None  # mean token cross-entropy (ignore_index=-100); None without targets
    aux_loss: torch.Tensor  # sum over layers and iterations of the alpha-scaled balance losses
    aux_losses: list[torch.Tensor]  # flat, layer-major: layer 0 iterations 0..C-1, layer 1, ...
    # stats[layer][iteration] = {"tokens_per_expert": LongTensor (N,), "entropy": float,
    # "overlap_next": float | None}; empty per layer in dense mode; [] without return_stats.
    stats: list[list[dict[str, Any]]] = field(default_factory=list)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.outer_residual = cfg.outer_residual
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = ChainOfExperts(cfg)

    def forward(self, x_BTD: torch.Tensor, return_stats: bool = False) -> tuple[torch.Tensor, list[torch.Tensor], list[dict[str, Any]]]:
        h_BTD = x_BTD + self.attn(self.attn_norm(x_BTD))
        chain = self.ffn(self.ffn_norm(h_BTD), return_stats=return_stats)
        out_BTD = chain.u_BTD + h_BTD if self.outer_residual else chain.u_BTD
        return out_BTD, chain.aux_losses, chain.stats


class CoELM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        init_weights(self, cfg.init_std)

    def forward(self, idx_BT: torch.Tensor, targets_BT: torch.Tensor | None = None,
                return_stats: bool = False) -> LMOutput:
        if idx_BT.dim() != 2:
            raise ValueError(f"idx_BT: expected a (batch, seq) integer tensor, got shape {tuple(idx_BT.shape)}")
        T = idx_BT.shape[1]
        if T > self.cfg.max_seq_len:
            raise ValueError(f"idx_BT: sequence length {T} exceeds ModelConfig.max_seq_len={self.cfg.max_seq_len}")
        x_BTD = self.tok_emb(idx_BT)
        aux_losses: list[torch.Tensor] = []
        stats: list[list[dict[str, Any]]] = []
        for block in self.layers:
            x_BTD, layer_aux, layer_stats = block(x_BTD, return_stats=return_stats)
            aux_losses.extend(layer_aux)
            if return_stats:
                stats.append(layer_stats)
        x_BTD = self.norm(x_BTD)
        head_weight = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        logits_BTV = F.linear(x_BTD, head_weight)
        loss = None
        if targets_BT is not None:
            loss = F.cross_entropy(logits_BTV.float().reshape(-1, logits_BTV.shape[-1]), targets_BT.reshape(-1))
        aux = torch.stack(aux_losses).sum() if aux_losses else torch.zeros((), device=idx_BT.device)
        return LMOutput(logits_BTV, loss, aux, aux_losses, stats)
