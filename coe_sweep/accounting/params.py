"""Parameter counts of a CoE/MoE LM as pure functions of its `ModelConfig` (no torch).

The layout counted here is the one in coe_sweep/model/lm.py's docstring ("Parameter layout"); the test
`tests/accounting/test_params.py` holds `params_total(cfg)` equal to `sum(p.numel())` of the built
`CoELM(cfg)` over a grid of configurations. Counting follows the config's structure (one small
function per module), never parameter names, so that renaming an attribute cannot change a count
silently (the torchtitan caveat in STYLE.md).

Embedding parameters are `tok_emb` (V x D) plus `lm_head` (D x V, absent when tied). Following
Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", section 2.1), N in the 6N rule
excludes them; both splits are reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coe_sweep.model.config import ModelConfig


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts (numbers of scalars) of one model.

    total: every parameter of the built model.
    active: the parameters one token's forward pass can touch (see `params_active`).
    embedding: tok_emb + lm_head (lm_head counted once, not at all extra when tied).
    non_embedding: total - embedding.
    active_non_embedding: active - embedding (the N of the 6N convention).
    """

    total: int
    active: int
    embedding: int
    non_embedding: int
    active_non_embedding: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# --- per-module counts (each mirrors one module of the contract's layout) ---

def _rmsnorm(cfg: ModelConfig) -> int:
    return cfg.d_model  # weight only, no bias


def _attention(cfg: ModelConfig) -> int:
    q_width = cfg.heads * cfg.head_size
    kv_width = cfg.kv_heads * cfg.head_size
    # wqkv (D -> H*hd + 2*KV*hd: q, k and v in one matrix), wo (H*hd -> D); no biases, rotary has none
    return cfg.d_model * q_width + 2 * cfg.d_model * kv_width + q_width * cfg.d_model


def _router(cfg: ModelConfig) -> int:
    return cfg.d_model * cfg.n_experts  # Linear(D, N, bias=False)


def _expert(cfg: ModelConfig) -> int:
    return 3 * cfg.d_model * cfg.d_expert  # SwiGLU: gate (F x D), up (F x D), down (D x F)


def _shared_experts(cfg: ModelConfig) -> int:
    # one fused SwiGLU of width n_shared * F (absent when n_shared == 0)
    return 3 * cfg.d_model * cfg.n_shared * cfg.d_expert


def _layer(cfg: ModelConfig, routed_experts: int) -> int:
    return (2 * _rmsnorm(cfg) + _attention(cfg) + cfg.n_routers * _router(cfg)
            + routed_experts * _expert(cfg) + _shared_experts(cfg))


def _embedding(cfg: ModelConfig) -> int:
    tok_emb = cfg.vocab_size * cfg.d_model
    lm_head = 0 if cfg.tie_embeddings else cfg.d_model * cfg.vocab_size
    return tok_emb + lm_head


def distinct_experts_per_token(cfg: ModelConfig) -> int:
    """Upper bound on the distinct routed experts one token reaches in one layer: min(C*K, N).

    Each of the C iterations picks K experts; iterations may pick the same expert again, so C*K is
    an upper bound that the expert count N caps. Dense mode (K = N) gives N.
    """
    return min(cfg.iterations * cfg.top_k, cfg.n_experts)


def param_counts(cfg: ModelConfig) -> ParamCounts:
    """All parameter counts of `cfg`; see `params_total` and `params_active` for the definitions."""
    embedding = _embedding(cfg)
    final_norm = _rmsnorm(cfg)
    total = embedding + final_norm + cfg.n_layers * _layer(cfg, cfg.n_experts)
    active = embedding + final_norm + cfg.n_layers * _layer(cfg, distinct_experts_per_token(cfg))
    return ParamCounts(total=total, active=active, embedding=embedding,
                       non_embedding=total - embedding, active_non_embedding=active - embedding)


def params_total(cfg: ModelConfig) -> int:
    """Every parameter of `CoELM(cfg)`: equals `sum(p.numel() for p in model.parameters())`.

    = V*D (tok_emb) + [D*V (lm_head) unless tied] + D (final norm)
      + L * (2D (norms) + D*(2*H*hd + 2*KV*hd) (attention) + n_routers*D*N (routers: C independent,
             1 shared, 0 dense) + N*3*D*F (routed experts) + 3*D*S*F (shared experts)).
    """
    return param_counts(cfg).total


def params_active(cfg: ModelConfig) -> int:
    """Parameters one token's forward pass can touch (an upper bound, embeddings included).

    Definition: embeddings (tok_emb + lm_head, counted in full as in the embedding split; use
    `param_counts(cfg).active_non_embedding` to leave them out), the final norm, and per layer:
    both norms, all attention weights, every router the layer holds (C independent routers, or the
    1 shared router, which is touched C times but is one set of parameters; none in dense mode),
    the shared experts, and min(C*K, N) routed experts: C iterations of top-K can reach at most
    C*K distinct experts, and never more than N. For MoE (C = 1) this is the usual K-of-N count;
    for CoE it is the upper bound on distinct experts, since iterations may re-pick an expert.
    """
    return param_counts(cfg).active
