"""Router: fp32 softmax, greedy top-k, renormalisation, scaling, uniform switch, balance loss."""

from __future__ import annotations

import math

import pytest
import torch

from coe_sweep.model.router import route, router_entropy, sequence_balance_loss, topk_overlap


def test_aux_loss_equals_hand_computation() -> None:
    # B=2 sequences of T=3 tokens, D=2, N=3 experts, K=2, alpha=0.5; logits chosen by hand.
    u = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
                      [[2.0, 0.0], [0.0, -1.0], [0.5, 0.5]]])
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5]])
    r = route(u, w, top_k=2, aux_alpha=0.5)
    N, K, T = 3, 2, 3
    expected = 0.0
    for b in range(2):
        probs = []
        for t in range(T):
            x = u[b, t].tolist()
            logits = [sum(wi * xi for wi, xi in zip(w[n].tolist(), x, strict=True)) for n in range(N)]
            z = sum(math.exp(v) for v in logits)
            probs.append([math.exp(v) / z for v in logits])
        counts = [0] * N
        for t in range(T):
            for n in sorted(range(N), key=lambda n: -probs[t][n])[:K]:
                counts[n] += 1
        f = [c * N / (K * T) for c in counts]
        p = [sum(probs[t][n] for t in range(T)) / T for n in range(N)]
        expected += sum(fi * pi for fi, pi in zip(f, p, strict=True)) / 2
    assert r.aux_loss.item() == pytest.approx(0.5 * expected, rel=1e-6)
    assert r.aux_loss.requires_grad is False  # no parameter needs grad here
    assert r.scores_SN.dtype == torch.float32


def test_balance_loss_is_one_when_uniform_and_balanced() -> None:
    scores = torch.full((1, 4, 4), 0.25)
    idx = torch.tensor([[[0], [1], [2], [3]]])
    assert sequence_balance_loss(scores, idx).item() == pytest.approx(1.0)
    skewed = torch.tensor([[[0], [0], [0], [0]]])
    assert sequence_balance_loss(scores, skewed).item() == pytest.approx(1.0)  # P uniform
    peaked = torch.tensor([[[0.97, 0.01, 0.01, 0.01]] * 4])
    assert sequence_balance_loss(peaked, skewed).item() == pytest.approx(4 * 0.97)


def test_topk_weights_without_renormalisation_are_the_scores() -> None:
    u, w = torch.randn(2, 5, 8), torch.randn(6, 8)
    r = route(u, w, top_k=3)
    assert torch.allclose(r.weights_SK, r.scores_SN.gather(1, r.topk_idx_SK))
    assert (r.weights_SK.sum(-1) < 1).all()
    # greedy: the chosen scores are the K largest
    assert torch.allclose(r.weights_SK.sort(-1, descending=True).values, r.scores_SN.topk(3).values)


def test_renormalised_topk_sums_to_one_and_scaling_applies() -> None:
    u, w = torch.randn(2, 5, 8), torch.randn(6, 8)
    r = route(u, w, top_k=3, renormalize=True)
    assert torch.allclose(r.weights_SK.sum(-1), torch.ones(10))
    r2 = route(u, w, top_k=3, renormalize=True, routed_scaling=2.5)
    assert torch.allclose(r2.weights_SK, 2.5 * r.weights_SK)


def test_router_math_is_fp32_for_bf16_input() -> None:
    u, w = torch.randn(1, 4, 8, dtype=torch.bfloat16), torch.randn(4, 8, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r = route(u, w, top_k=2, aux_alpha=0.1)
    assert r.scores_SN.dtype == torch.float32 and r.weights_SK.dtype == torch.float32
    assert torch.allclose(r.scores_SN.sum(-1), torch.ones(4))


def test_uniform_routing_is_balanced_round_robin() -> None:
    u, w = torch.randn(2, 8, 4), torch.randn(8, 4)
    r = route(u, w, top_k=2, uniform=True)
    counts = torch.bincount(r.topk_idx_SK.reshape(-1), minlength=8)
    assert counts.tolist() == [4] * 8
    assert r.topk_idx_SK[0].tolist() == [0, 1] and r.topk_idx_SK[5].tolist() == [2, 3]
    assert torch.allclose(r.weights_SK, r.scores_SN.gather(1, r.topk_idx_SK))


def test_entropy_and_overlap() -> None:
    assert router_entropy(torch.full((3, 8), 1 / 8)).item() == pytest.approx(math.log(8))
    assert router_entropy(torch.eye(4)).item() == pytest.approx(0.0, abs=1e-6)
    a = torch.tensor([[0, 1], [2, 3]])
    assert topk_overlap(a, a.flip(-1)).item() == 1.0
    assert topk_overlap(a, torch.tensor([[1, 5], [6, 7]])).item() == pytest.approx(0.25)


def test_renormalisation_applies_only_when_k_is_above_one() -> None:
    u, w = torch.randn(2, 5, 8), torch.randn(6, 8)
    r = route(u, w, top_k=1, renormalize=True, routed_scaling=2.0)
    # with K = 1 a renormalised weight would be exactly 1; the reference gate keeps the score instead
    assert torch.allclose(r.weights_SK, 2.0 * r.scores_SN.gather(1, r.topk_idx_SK))
    assert (r.weights_SK < 2.0).all()


def test_top1_router_learns_from_the_lm_loss_alone_with_renormalisation_on() -> None:
    """Issue 10: with renormalize_topk and K = 1 the router used to get no gradient from the LM loss."""
    from coe_sweep.model.config import ModelConfig
    from coe_sweep.model.lm import CoELM

    cfg = ModelConfig(vocab_size=40, max_seq_len=12, d_model=16, head_dim=8, n_layers=1, d_expert=16,
                      n_experts=4, top_k=1, iterations=2, renormalize_topk=True, aux_loss_alpha=0.0, init_std=0.2)
    model = CoELM(cfg)
    routers = [r.weight for r in model.layers[0].ffn.routers]
    before = [w.detach().clone() for w in routers]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    idx = torch.randint(0, 40, (3, 13))
    out = model(idx[:, :-1], targets_BT=idx[:, 1:])
    assert out.aux_loss.item() == 0.0  # the LM loss alone
    out.loss.backward()
    for w in routers:
        assert w.grad is not None and w.grad.abs().sum() > 0
    opt.step()
    assert all(not torch.equal(w, b) for w, b in zip(routers, before, strict=True))
