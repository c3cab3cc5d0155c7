"""Causal self-attention with rotary embeddings and optional grouped-query attention (GQA).

Two implementations of the same math, chosen by `ModelConfig.attention_impl`:
- "sdpa": `F.scaled_dot_product_attention(is_causal=True)` (fast; torch's FlopCounterMode counts 0
  for it on CPU),
- "explicit": QK^T, causal mask, softmax and AV as plain matmuls, which FlopCounterMode sees. It
  computes the full T x T score matrix (the mask does not save FLOPs), so a counter reports the
  un-halved attention cost.
Parameters: `wqkv` (D -> (H + 2 KV) * hd: the q, k and v projections stored as ONE matrix, rows
[0, H*hd) for q, then k, then v, so that one matmul computes all three) and `wo` (H*hd -> D); no
biases. Rotary embeddings rotate q and k together, in one op (coe_sweep/model/layers.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from coe_sweep.model.config import ModelConfig
from coe_sweep.model.layers import Rotary


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.heads
        self.n_kv_heads = cfg.kv_heads
        self.head_dim = cfg.head_size
        self.impl = cfg.attention_impl
        D, hd = cfg.d_model, cfg.head_size
        self.wqkv = nn.Linear(D, (self.n_heads + 2 * self.n_kv_heads) * hd, bias=False)
        self.wo = nn.Linear(self.n_heads * hd, D, bias=False)
        self.rotary = Rotary(hd, cfg.max_seq_len, cfg.rope_theta)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        H, KV, hd = self.n_heads, self.n_kv_heads, self.head_dim
        qkv_BTNd = self.wqkv(x_BTD).view(B, T, H + 2 * KV, hd)  # N = H + 2 KV head slots
        qk_BTNd = self.rotary(qkv_BTNd[:, :, :H + KV])  # q and k rotated in one op
        q = qk_BTNd[:, :, :H].transpose(1, 2)  # (B, H, T, hd)
        k = qk_BTNd[:, :, H:].transpose(1, 2)  # (B, KV, T, hd)
        v = qkv_BTNd[:, :, H + KV:].transpose(1, 2)
        if self.impl == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=KV != H)
        else:
            y = _explicit_attention(q, k, v)
        out_BTD: torch.Tensor = self.wo(y.transpose(1, 2).reshape(B, T, H * hd))
        return out_BTD


def _explicit_attention(q_BHTd: torch.Tensor, k_BKTd: torch.Tensor, v_BKTd: torch.Tensor) -> torch.Tensor:
    """softmax(QK^T / sqrt(hd) + causal mask) V with matmuls visible to FlopCounterMode."""
    H, KV = q_BHTd.shape[1], k_BKTd.shape[1]
    if KV != H:
        k_BKTd = k_BKTd.repeat_interleave(H // KV, dim=1)
        v_BKTd = v_BKTd.repeat_interleave(H // KV, dim=1)
    T = q_BHTd.shape[-2]
    scores = torch.matmul(q_BHTd, k_BKTd.transpose(-2, -1)) / math.sqrt(q_BHTd.shape[-1])
    causal_TT = torch.ones(T, T, dtype=torch.bool, device=q_BHTd.device).tril()
    scores = scores.masked_fill(~causal_TT, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(v_BKTd.dtype)
    return torch.matmul(probs, v_BKTd)
