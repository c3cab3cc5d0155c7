"""runners.distributed + runners.train with a real gloo process group (two processes, no Ray): a
2-worker trial follows the 1-worker trial of the same global batch and seed; its RunResult counts the
same FLOPs and carries every worker's memory. The Ray Train route is tested in tests/sweep."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from coe_sweep.trial import Horizon, RunSpec
from runners.distributed import DataParallel, train_on_local_processes
from runners.train import train

SpecFactory = Callable[..., RunSpec]
# fp32 all-reduce sums the two half-batch gradients in another order than one full-batch backward
# (and the two half-batch CE means are averaged after the fact): differences of a few fp32 ulps per step.
# Measured over seeds 0-2, 20 steps: max |loss difference| 9.5e-7 (one ulp at a loss of ~4). 1e-5 leaves
# 10x room for that drift and stays 1000x below what one training step changes here (> 1e-2).
LOSS_ATOL = 1e-5


@pytest.mark.slow  # two real gloo processes (spawned): ~10 s
def test_two_gloo_workers_follow_one_worker(tiny_spec: SpecFactory) -> None:
    spec = tiny_spec(train={"batch_size": 8, "eval_interval": 5}, horizon=Horizon(steps=20))
    one = train(spec)
    results = train_on_local_processes(spec, 2)
    two = results[0]
    assert one.status == two.status == "ok"
    assert [s for s, _ in two.train_curve] == [s for s, _ in one.train_curve]
    diffs = [abs(a - b) for (_, a), (_, b) in zip(one.train_curve + one.val_curve, two.train_curve + two.val_curve,
                                                  strict=True)]
    assert max(diffs) < LOSS_ATOL, max(diffs)
    assert one.train_curve[0][1] - one.train_curve[-1][1] > 100 * LOSS_ATOL  # the curve moves far more
    # the same total: tokens and FLOPs over both workers equal one worker's with the global batch
    assert (two.steps, two.tokens, two.workers) == (one.steps, one.tokens, 2)
    assert two.flops == pytest.approx(one.flops)
    assert len(two.peak_memory_per_worker_bytes) == 2 and min(two.peak_memory_per_worker_bytes) > 0
    assert two.peak_memory_bytes == max(two.peak_memory_per_worker_bytes)
    assert results[1].val_curve == two.val_curve and results[1].train_curve == two.train_curve
    assert one.workers == 1 and one.peak_memory_per_worker_bytes == []


def test_batch_not_divisible_is_refused_before_training(tiny_spec: SpecFactory) -> None:
    spec = tiny_spec(train={"batch_size": 5})
    with pytest.raises(ValueError, match=r"train.batch_size=5 .*cluster.workers_per_trial=2"):
        train(spec, data_parallel=DataParallel(0, 2))


@pytest.mark.parametrize("fields", [
    {"iterations": 1, "top_k": 1},
    {"iterations": 3, "top_k": 1, "renormalize_topk": True},  # K=1 renormalised: the LM loss gives the router 0
    {"iterations": 2, "top_k": 2, "dispatch": "loop"},
    {"iterations": 2, "top_k": 2, "router_mode": "shared", "n_shared": 0},
    {"iterations": 2, "top_k": 1, "aux_loss_alpha": 0.0},
    {"iterations": 1, "top_k": 2, "uniform_routing": True},
    {"dense": True, "n_experts": 2, "top_k": 2},
])
def test_every_parameter_gets_a_gradient_with_idle_experts(fields: dict[str, object]) -> None:
    """DataParallel.wrap runs DDP without its unused-parameter search, which is only right when every
    parameter gets a gradient every step, even with experts no token reached (2 tokens, 8 experts)."""
    from coe_sweep.model.config import ModelConfig
    from coe_sweep.model.lm import CoELM

    torch.manual_seed(0)
    base = dict(d_model=32, n_layers=1, n_heads=2, d_expert=16, n_experts=8, max_seq_len=16)
    model = CoELM(ModelConfig(**{**base, **fields}))  # type: ignore[arg-type]
    idx = torch.randint(0, 258, (1, 3))
    out = model(idx[:, :-1], targets_BT=idx[:, 1:])
    (out.loss + out.aux_loss).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
