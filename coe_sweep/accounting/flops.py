"""Forward and training FLOPs per token of a CoE/MoE LM, as named terms (pure Python, no torch).

Convention: one multiply-accumulate = 2 FLOPs, and only matrix products are counted (the same
convention as Kaplan et al. 2020, table 1, and Hoffmann et al. 2022 "Chinchilla", appendix F,
minus Chinchilla's softmax term). Element-wise work (norms, rotary, SiLU, softmax, gate weighting,
residual adds, the loss) is not counted; it is what `torch.utils.flop_counter.FlopCounterMode`
does not count either, and `tests/accounting/test_flops.py` holds the total within 2% of that
counter on the loop-dispatch, explicit-attention path of the built model.

Compute that the paper's iso-compute rule (C x K constant) leaves out is counted honestly here:
the shared experts run every iteration (x C) and the router runs every iteration (x C), also when
a single router is shared across iterations.

Training FLOPs = TRAIN_FLOPS_MULTIPLIER (3) x forward FLOPs: the backward pass costs two forward
passes (one product for the input gradient, one for the weight gradient; Kaplan 2020 section 2.1,
Chinchilla appendix F). This module is the ONE place that states it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from coe_sweep.accounting.params import param_counts
from coe_sweep.model.config import ModelConfig

TRAIN_FLOPS_MULTIPLIER = 3  # forward + backward (2 x forward); Kaplan 2020 s2.1, Chinchilla app. F


@dataclass(frozen=True)
class FlopTerms:
    """Forward FLOPs per token by term, summed over all layers (float, FLOPs/token)."""

    attention_proj: float  # q, k, v, o projections
    attention_scores: float  # QK^T and (softmax)V at seq_len; causal handling: see forward_flops_per_token
    routers: float  # C router applications per layer (shared router too: it runs every iteration)
    routed_experts: float  # C x K expert applications per layer
    shared_experts: float  # C shared-expert applications per layer
    lm_head: float  # D -> V projection (also when tied: the product is still computed)

    @property
    def total(self) -> float:
        return float(sum(getattr(self, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, float]:
        """The six terms and `total`."""
        return {**asdict(self), "total": self.total}


def _check_seq_len(cfg: ModelConfig, seq_len: int) -> None:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len={seq_len!r} is invalid: expected an integer >= 1")
    if seq_len > cfg.max_seq_len:
        raise ValueError(f"seq_len={seq_len!r} is invalid: expected <= model max_seq_len={cfg.max_seq_len}")


def forward_flops_per_token(cfg: ModelConfig, seq_len: int, *, causal: bool = False) -> FlopTerms:
    """Forward FLOPs per token of `cfg` on sequences of `seq_len` tokens, by term.

    Per layer (D = d_model, H/KV heads of width hd, N routed experts of width F, S shared, C
    iterations, K experts per iteration, T = seq_len), 2 FLOPs per multiply-accumulate:
      attention_proj   = 2 * D * (H*hd + KV*hd + KV*hd) + 2 * H*hd * D      (Chinchilla app. F,
                         "key, query and value projections" and "final linear", with GQA widths)
      attention_scores = 2 * T * H*hd  (QK^T)  +  2 * T * H*hd  (probs @ V)   (Chinchilla app. F,
                         "key @ query logits" and "softmax @ query reduction"; per token)
      routers          = C * 2 * D * N         (one D -> N product per iteration; 0 in dense mode)
      routed_experts   = C * K * 2 * 3 * D * F (SwiGLU gate, up, down per chosen expert slot)
      shared_experts   = C * 2 * 3 * D * S*F   (fused SwiGLU of width S*F, every iteration)
    and once per token: lm_head = 2 * D * V.

    Causal handling: by default (`causal=False`) the scores term counts the full T x T products,
    which is what the explicit-matmul attention path computes (it masks after the product) and
    what FlopCounterMode counts on it, and it is Chinchilla's convention. `causal=True` counts only
    the unmasked half: a query at position i attends to i+1 keys, on average (T+1)/2, which is
    closer to what a causal flash kernel executes. The budgeted training FLOPs
    (`train_flops_per_token`) use the full count.
    """
    _check_seq_len(cfg, seq_len)
    d, hd, layers, c = cfg.d_model, cfg.head_size, cfg.n_layers, cfg.iterations
    q_width, kv_width = cfg.heads * hd, cfg.kv_heads * hd
    keys_per_query = (seq_len + 1) / 2 if causal else float(seq_len)
    expert_flops = 2 * 3 * d * cfg.d_expert
    return FlopTerms(
        attention_proj=float(layers * (2 * d * (q_width + 2 * kv_width) + 2 * q_width * d)),
        attention_scores=float(layers * 2 * (2 * keys_per_query * q_width)),
        routers=float(layers * (0 if cfg.dense else c) * 2 * d * cfg.n_experts),
        routed_experts=float(layers * c * cfg.top_k * expert_flops),
        shared_experts=float(layers * c * cfg.n_shared * expert_flops),
        lm_head=float(2 * d * cfg.vocab_size),
    )


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token: TRAIN_FLOPS_MULTIPLIER x forward total (full attention count)."""
    return TRAIN_FLOPS_MULTIPLIER * forward_flops_per_token(cfg, seq_len).total


def six_n_flops_per_token(cfg: ModelConfig) -> float:
    """The 6N convention (Kaplan 2020, eq. 2.1: C ~ 6 N per token), for comparison.

    N = active non-embedding parameters (`param_counts(cfg).active_non_embedding`), so for CoE it
    counts the min(C*K, N) distinct experts once, not C times: this is exactly where 6N and the
    term-by-term count disagree for CoE (and it also omits attention scores and the LM head).
    """
    return 6.0 * param_counts(cfg).active_non_embedding


def tokens_for_flops(cfg: ModelConfig, seq_len: int, flops: float) -> int:
    """Tokens a training budget of `flops` buys: floor(flops / train_flops_per_token)."""
    if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not math.isfinite(flops) or flops <= 0:
        raise ValueError(f"flops={flops!r} is invalid: expected a finite number > 0")
    return int(flops // train_flops_per_token(cfg, seq_len))
