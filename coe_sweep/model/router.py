"""Token-choice router of one chain iteration: fp32 softmax over the routed experts, greedy top-k,
optional renormalisation (K > 1 only), routed scaling, and the DeepSeek-V2 sequence-level balance loss.

Legend: B batch, T sequence positions, S = B*T tokens, N routed experts, K experts per token.
The router's only parameter is a bias-free `nn.Linear(D, N)` weight (owned by ChainOfExperts so
the parameter layout of coe_sweep/model/lm.py holds); this module holds the math, as functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Routing:
    """One router application. `scores_SN` is the fp32 softmax; `weights_SK` the gate values applied
    to the chosen experts (fp32, after renormalisation and scaling); `aux_loss` is already scaled
    by alpha (a 0-dim fp32 tensor)."""

    scores_SN: torch.Tensor
    topk_idx_SK: torch.Tensor
    weights_SK: torch.Tensor
    aux_loss: torch.Tensor


def route(
    u_BTD: torch.Tensor,
    weight_ND: torch.Tensor,
    *,
    top_k: int,
    renormalize: bool = False,
    routed_scaling: float = 1.0,
    aux_alpha: float = 0.0,
    uniform: bool = False,
) -> Routing:
    """Route every token of `u_BTD` to `top_k` of the N experts of `weight_ND`.

    `renormalize` rescales the K gate weights to sum 1 only when K > 1, as the reference gate does:
    with K = 1 a renormalised weight is always 1 and the router would get no gradient from the LM loss.
    `uniform=True` (benchmarks only) replaces the top-k choice by a balanced round-robin
    assignment (token s, slot k -> expert (s*K + k) mod N); gates are still the router's scores
    at those experts so that the arithmetic and autograd graph are those of real routing.
    """
    B, T, D = u_BTD.shape
    N = weight_ND.shape[0]
    # Router math in fp32 even under bf16 autocast (DeepSeek-V2 / torchtitan practice), laid out
    # (N, S): softmax and top-k along dim 0 vectorise over the tokens, where a softmax over a last
    # dim of 4-16 experts runs row by row (measured on CPU: 20x slower at N=8).
    with torch.autocast(device_type=u_BTD.device.type, enabled=False):
        logits_NS = weight_ND.float() @ u_BTD.reshape(B * T, D).float().t()
        scores_NS = logits_NS.softmax(dim=0)
        scores_SN = scores_NS.t()
        if uniform:
            slots_SK = torch.arange(B * T * top_k, device=u_BTD.device).view(B * T, top_k)
            topk_idx_SK = slots_SK % N
            weights_SK = scores_SN.gather(1, topk_idx_SK)
        elif top_k == 1:
            weights_S, topk_idx_S = scores_NS.max(dim=0)
            weights_SK, topk_idx_SK = weights_S.unsqueeze(1), topk_idx_S.unsqueeze(1)
        else:
            weights_KS, topk_idx_KS = torch.topk(scores_NS, top_k, dim=0)
            weights_SK, topk_idx_SK = weights_KS.t(), topk_idx_KS.t()
        if renormalize and top_k > 1:
            weights_SK = weights_SK / (weights_SK.sum(dim=-1, keepdim=True) + 1e-20)
        if routed_scaling != 1.0:
            weights_SK = weights_SK * routed_scaling
        if aux_alpha == 0:
            aux = scores_NS.new_zeros(())
        else:
            aux = sequence_balance_loss(scores_SN.view(B, T, N), topk_idx_SK.reshape(B, T, top_k), scale=aux_alpha)
    return Routing(scores_SN, topk_idx_SK, weights_SK, aux)


def sequence_balance_loss(scores_BTN: torch.Tensor, topk_idx_BTK: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """DeepSeek-V2 sequence-level balance loss (arXiv 2405.04434, eq. 23-25), times `scale` (alpha):

        f_{b,i} = N / (K T) * #{t : expert i in topk(b, t)}   (no gradient)
        P_{b,i} = 1/T * sum_t s_{b,t,i}
        loss    = mean_b sum_i f_{b,i} P_{b,i}

    It equals 1 for perfectly uniform scores and balanced choices. Computed without the counts:
    sum_i f_{b,i} P_{b,i} = N / (K T) * sum over the T*K chosen (t, k) of P_{b, idx[b,t,k]}, a gather
    (four ops instead of a scatter-add of counts and the products).
    """
    B, T, N = scores_BTN.shape
    K = topk_idx_BTK.shape[-1]
    p_BN = scores_BTN.float().mean(dim=1)
    chosen_p = p_BN.gather(1, topk_idx_BTK.reshape(B, T * K))
    return chosen_p.sum() * (scale * N / (K * T * B))


def router_entropy(scores_SN: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of the entropy (nats) of the router's softmax."""
    return -(scores_SN * scores_SN.clamp_min(1e-20).log()).sum(dim=-1).mean()


def topk_overlap(idx_a_SK: torch.Tensor, idx_b_SK: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of |chosen_a ∩ chosen_b| / K (1: same experts, 0: disjoint)."""
    same_SKK = idx_a_SK.unsqueeze(-1) == idx_b_SK.unsqueeze(-2)
    return same_SKK.any(dim=-1).float().sum(dim=-1).mean() / idx_a_SK.shape[-1]
