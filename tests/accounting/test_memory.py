"""The memory estimate against the peak measured over a real training step (runners/memory.py).

A step is the runner's own (runners/step.py): zero_grad, forward, loss + aux loss, backward, gradient
clipping, fused AdamW step, measured after one warm-up step so the optimizer states exist (steady state).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch

from coe_sweep.accounting import memory_estimate, params_total
from coe_sweep.model.config import ModelConfig
from coe_sweep.model.lm import CoELM
from coe_sweep.trial import TrainConfig
from runners.device import resolve_device
from runners.memory import MemoryMeasurement, measure_step_memory
from runners.step import TrainStep

BASE = ModelConfig(vocab_size=258, max_seq_len=64, d_model=64, n_layers=2, n_heads=4, d_expert=32,
                   n_experts=8, top_k=2, n_shared=1)

CASES = {
    "moe-sdpa-grouped": (dataclasses.replace(BASE), 4, 32),
    "coe2-explicit-loop": (dataclasses.replace(BASE, iterations=2, attention_impl="explicit", dispatch="loop"), 8, 64),
    "coe3-shared-router-gqa": (dataclasses.replace(BASE, iterations=3, router_mode="shared", n_kv_heads=2), 4, 32),
    "dense-c2-tied": (dataclasses.replace(BASE, dense=True, n_experts=2, top_k=2, iterations=2,
                                          tie_embeddings=True), 4, 32),
    "optimizer-bound-tiny-batch": (dataclasses.replace(BASE, n_shared=0), 1, 8),
}


def _training_step(cfg: ModelConfig, batch: int, seq: int, autocast_bf16: bool = False,
                   device: str = "cpu") -> tuple[torch.nn.Module, torch.optim.Optimizer, Callable, list]:
    torch.manual_seed(0)
    model = CoELM(cfg).to(device)
    tc = TrainConfig(lr=1e-3, weight_decay=0.01, grad_clip=1.0, device=device,  # type: ignore[arg-type]
                     dtype="bf16" if autocast_bf16 else "fp32", threads=1 if device == "cpu" else None)
    stepper = TrainStep(model, tc, total_steps=100, device=resolve_device(tc))
    batch_BT1 = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device=device)

    def step() -> torch.Tensor:
        return stepper.run(batch_BT1)

    step()  # warm-up: creates the AdamW states
    return model, stepper.optimizer, step, [batch_BT1]


def _measure(cfg: ModelConfig, batch: int, seq: int, **kw: object) -> MemoryMeasurement:
    model, optimizer, step, inputs = _training_step(cfg, batch, seq, **kw)
    return measure_step_memory(model, step, optimizer, extra_tensors=inputs)


@pytest.mark.parametrize("case", CASES)
def test_estimate_within_25_percent_of_measured_peak(case: str) -> None:
    cfg, batch, seq = CASES[case]
    measured = _measure(cfg, batch, seq)
    estimate = memory_estimate(cfg, batch, seq, "fp32", "adamw")
    assert measured.method == "memtracker"
    assert abs(estimate.total - measured.peak_bytes) / measured.peak_bytes < 0.25, (estimate.as_dict(), measured)


def test_estimate_categories_match_the_tracker_at_the_peak() -> None:
    """At the activation-bound peak (backward start) MemTracker's categories line up with ours."""
    cfg, batch, seq = CASES["coe2-explicit-loop"]
    measured = _measure(cfg, batch, seq)
    estimate = memory_estimate(cfg, batch, seq)
    cat = measured.peak_by_category
    assert cat["parameter"] + cat["buffer"] == estimate.weights
    assert cat.get("gradient", 0) == 0  # zero_grad(set_to_none) freed them; none exist yet at the peak
    saved_and_logits = cat["activation"] + cat["temp"] + cat.get("other", 0)
    assert saved_and_logits == pytest.approx(estimate.activations + estimate.logits, rel=0.05)


def test_activations_grow_with_iterations_and_batch() -> None:
    one = memory_estimate(BASE, 4, 32)
    two = memory_estimate(dataclasses.replace(BASE, iterations=2), 4, 32)
    double_batch, triple_batch = memory_estimate(BASE, 8, 32), memory_estimate(BASE, 12, 32)
    assert two.activations > one.activations and two.weights > one.weights  # one more router
    # affine in the batch: saved tensors per token plus per-step weight copies (grouped dispatch)
    assert triple_batch.activations - double_batch.activations == pytest.approx(
        double_batch.activations - one.activations, rel=1e-3)
    assert 1.5 * one.activations < double_batch.activations <= 2 * one.activations
    assert double_batch.weights == one.weights
    # the paper's "allocated after a step" is about 16 bytes per parameter with AdamW
    assert one.weights + one.grads + one.optimizer == pytest.approx(16 * params_total(BASE), rel=0.01)
    assert memory_estimate(BASE, 4, 32, optimizer="sgd").optimizer == 0


def test_allocated_after_step_is_weights_grads_and_states() -> None:
    cfg, batch, seq = CASES["moe-sdpa-grouped"]
    measured = _measure(cfg, batch, seq)
    estimate = memory_estimate(cfg, batch, seq)
    inputs = batch * (seq + 1) * 8  # the int64 (B, T+1) batch passed as extra_tensors
    expected = estimate.weights + estimate.grads + estimate.optimizer + inputs
    assert measured.allocated_after_step_bytes == pytest.approx(expected, abs=64)
    assert measured.peak_bytes > measured.allocated_after_step_bytes


def test_bf16_autocast_estimate_on_cpu() -> None:
    """The bf16 rules (autocast casts, weight copies) checked with CPU autocast and the CPU optimizer."""
    cfg, batch, seq = CASES["coe2-explicit-loop"]
    measured = _measure(cfg, batch, seq, autocast_bf16=True)
    estimate = memory_estimate(cfg, batch, seq, "bf16", device="cpu")
    assert abs(estimate.total - measured.peak_bytes) / measured.peak_bytes < 0.25
    assert estimate.activations < memory_estimate(cfg, batch, seq, "fp32").activations


def test_both_cpu_trackers_agree() -> None:
    cfg, batch, seq = CASES["coe3-shared-router-gqa"]
    model, optimizer, step, inputs = _training_step(cfg, batch, seq)
    tracked = measure_step_memory(model, step, optimizer, extra_tensors=inputs, method="memtracker")
    live = measure_step_memory(model, step, optimizer, extra_tensors=inputs, method="live_storage")
    assert live.method == "live_storage"
    assert live.peak_bytes == tracked.peak_bytes
    assert live.allocated_after_step_bytes == tracked.allocated_after_step_bytes
    assert torch.is_tensor(live.step_output)


def test_falls_back_when_memtracker_refuses_two_forwards() -> None:
    cfg, _, seq = CASES["moe-sdpa-grouped"]
    batch = 16  # activation-bound: half of them (+ the first half's gradients) stay below all of them
    model, optimizer, _, (batch_BT1,) = _training_step(cfg, batch, seq)
    idx, targets = batch_BT1[:, :-1], batch_BT1[:, 1:]

    def accumulate_two_micro_batches() -> None:
        optimizer.zero_grad(set_to_none=True)
        for half in (slice(0, batch // 2), slice(batch // 2, batch)):
            model(idx[half], targets[half]).loss.backward()
        optimizer.step()

    measured = measure_step_memory(model, accumulate_two_micro_batches, optimizer, extra_tensors=[batch_BT1])
    assert measured.method == "live_storage"
    single = _measure(cfg, batch, seq)
    assert 0 < measured.peak_bytes < single.peak_bytes  # half-batch activations at a time


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="dtype"):
        memory_estimate(BASE, 4, 32, dtype="fp16")
    with pytest.raises(ValueError, match="optimizer"):
        memory_estimate(BASE, 4, 32, optimizer="lion")
    with pytest.raises(ValueError, match="batch_size"):
        memory_estimate(BASE, 0, 32)
    with pytest.raises(ValueError, match="max_seq_len"):
        memory_estimate(BASE, 4, 65)
    model, optimizer, step, _ = _training_step(BASE, 2, 8)
    with pytest.raises(ValueError, match="method"):
        measure_step_memory(model, step, optimizer, method="psutil")


@pytest.mark.gpu
def test_estimate_within_25_percent_of_cuda_peak_bf16() -> None:
    cfg, batch, seq = CASES["coe2-explicit-loop"]
    model, optimizer, step, _ = _training_step(cfg, batch, seq, autocast_bf16=True, device="cuda")
    measured = measure_step_memory(model, step, optimizer)
    estimate = memory_estimate(cfg, batch, seq, "bf16")
    assert measured.method == "cuda"
    assert abs(estimate.total - measured.peak_bytes) / measured.peak_bytes < 0.25
