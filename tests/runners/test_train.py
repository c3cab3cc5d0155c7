"""runners.train: result fields, report callback, divergence / OOM / failure handling, determinism."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from coe_sweep.accounting import memory_estimate, param_counts, train_flops_per_token
from coe_sweep.model.lm import CoELM
from coe_sweep.trial import Horizon, RunResult, RunSpec
from runners.train import classify_failure, train

SpecFactory = Callable[..., RunSpec]


def test_result_fields_are_filled(tiny_spec: SpecFactory) -> None:
    spec = tiny_spec(horizon=Horizon(steps=6))
    r = train(spec)
    assert r.status == "ok" and r.reason is None
    assert (r.steps, r.tokens) == (6, 6 * 4 * 32)
    assert r.train_flops_per_token == train_flops_per_token(spec.model, 32)
    assert r.flops == pytest.approx(r.train_flops_per_token * r.tokens)
    counts = param_counts(spec.model)
    assert (r.params_total, r.params_active) == (counts.total, counts.active)
    assert r.params_total == sum(p.numel() for p in CoELM(spec.model).parameters())
    assert [s for s, _ in r.train_curve] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in r.val_curve] == [0, 4, 6]  # start, every eval_interval, the end
    assert r.final_train_loss == r.train_curve[-1][1] and r.final_val_loss == r.val_curve[-1][1]
    assert abs(r.val_curve[0][1] - math.log(258)) < 0.1  # an untrained model is near uniform
    assert r.final_val_loss < r.val_curve[0][1]
    assert r.estimated_memory_bytes == memory_estimate(spec.model, 4, 32, dtype="fp32", device="cpu").total
    assert r.peak_memory_bytes is not None and r.allocated_after_step_bytes is not None
    # the paper's figure: at least fp32 weights + grads + two AdamW states; the peak is above it
    assert r.allocated_after_step_bytes >= 16 * r.params_total
    assert r.peak_memory_bytes > r.allocated_after_step_bytes
    assert r.tokens_per_s is not None and r.tokens_per_s > 0 and r.wall_s > 0
    assert r.mfu is None and r.device.startswith("cpu")
    assert {"L0.C0.max_load", "L0.C0.entropy", "L0.C0.overlap_next", "L0.C1.max_load", "max_load",
            "mean_entropy", "mean_overlap_next", "dead_experts"} <= set(r.routing)
    assert r.routing["max_load"] >= 1.0 and 0 <= r.routing["mean_overlap_next"] <= 1
    assert 0 < r.routing["mean_entropy"] <= math.log(4) + 1e-6
    assert RunResult.from_dict(r.to_dict()) == r


def test_report_callback_gets_evals_and_train_ticks(tiny_spec: SpecFactory) -> None:
    seen: list[dict[str, Any]] = []
    r = train(tiny_spec(train={"eval_interval": 10}, horizon=Horizon(steps=12)), report=seen.append)
    evals = [m for m in seen if "val_loss" in m]
    ticks = [m for m in seen if "val_loss" not in m]
    assert [m["step"] for m in evals] == [0, 10, 12]
    assert set(evals[1]) == {"step", "tokens", "train_loss", "val_loss", "elapsed_s"}
    assert evals[1]["tokens"] == 10 * 128 and evals[1]["train_loss"] == r.train_curve[9][1]
    assert [m["step"] for m in ticks] == [2, 4, 6, 8]  # every eval_interval // 5 steps
    assert all(set(m) == {"step", "tokens", "train_loss", "elapsed_s"} for m in ticks)
    assert [m["elapsed_s"] for m in seen] == sorted(m["elapsed_s"] for m in seen)


def test_report_callback_errors_propagate(tiny_spec: SpecFactory) -> None:
    def boom(metrics: dict[str, Any]) -> None:
        raise KeyError("caller's own bug")

    with pytest.raises(KeyError, match="caller's own bug"):
        train(tiny_spec(), report=boom)


def test_same_seed_same_curve_other_seed_other_curve(tiny_spec: SpecFactory) -> None:
    a = train(tiny_spec(horizon=Horizon(steps=3)))
    b = train(tiny_spec(horizon=Horizon(steps=3)))
    c = train(tiny_spec(train={"seed": 1}, horizon=Horizon(steps=3)))
    assert a.train_curve == b.train_curve and a.val_curve == b.val_curve
    assert a.train_curve != c.train_curve
    assert a.val_curve[0][1] != c.val_curve[0][1]  # different init, same validation windows


def test_huge_learning_rate_diverges_with_the_step(tiny_spec: SpecFactory) -> None:
    r = train(tiny_spec(train={"lr": 1e3, "warmup_steps": 0, "grad_clip": 0.0}, horizon=Horizon(steps=30)))
    assert r.status == "diverged"
    assert r.reason == f"non-finite loss (nan) at step {r.steps + 1}"
    assert r.steps < 30 and len(r.train_curve) == r.steps and r.final_val_loss is None
    assert r.tokens == r.steps * 128 and r.flops == pytest.approx(r.train_flops_per_token * r.tokens)


def _fault_at_call(monkeypatch: pytest.MonkeyPatch, call: int, fault: Callable[[Any], Any]) -> None:
    """Make the `call`-th training forward of CoELM (1-based, evals not counted) go wrong via `fault`."""
    original = CoELM.forward
    calls = {"n": 0}

    def forward(self: CoELM, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] == call:
                return fault(out)
        return out

    monkeypatch.setattr(CoELM, "forward", forward)


def test_injected_nan_loss_stops_before_the_update(tiny_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    def nan_loss(out: Any) -> Any:
        out.loss = out.loss * float("nan")
        return out

    _fault_at_call(monkeypatch, 3, nan_loss)
    r = train(tiny_spec(horizon=Horizon(steps=6)))
    assert (r.status, r.reason, r.steps) == ("diverged", "non-finite loss (nan) at step 3", 2)
    assert [s for s, _ in r.train_curve] == [1, 2] and all(math.isfinite(v) for _, v in r.train_curve)


@pytest.mark.parametrize("exc, status", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
    (RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: out of memory"), "oom"),
    (MemoryError(), "oom"),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), "failed"),
    (ZeroDivisionError("injected"), "failed"),
])
def test_exceptions_become_a_status_never_a_crash(tiny_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch,
                                                  exc: BaseException, status: str) -> None:
    def raise_it(out: Any) -> Any:
        raise exc

    _fault_at_call(monkeypatch, 4, raise_it)
    r = train(tiny_spec(horizon=Horizon(steps=6)))
    assert r.status == status and r.reason == f"{type(exc).__name__}: {exc}"
    assert r.steps == 3 and r.tokens == 3 * 128 and r.final_val_loss is None
    assert r.final_train_loss == r.train_curve[-1][1] and r.wall_s > 0
    assert classify_failure(exc) == (status, r.reason)


def test_bad_run_spec_raises_before_training(tiny_spec: SpecFactory) -> None:
    calls: list[dict[str, Any]] = []
    with pytest.raises(ValueError, match=r"ModelConfig\.vocab_size=300"):
        train(tiny_spec(model={"vocab_size": 300}), report=calls.append)
    with pytest.raises(ValueError, match=r"DataConfig\.source='nowhere'"):
        train(tiny_spec(data={"source": "nowhere"}), report=calls.append)
    assert calls == []


def test_cuda_request_without_cuda_is_bad_input(tiny_spec: SpecFactory) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"TrainConfig\.device='cuda' .*expected 'auto' or 'cpu'"):
        train(tiny_spec(train={"device": "cuda"}))


def test_thread_count_is_restored(tiny_spec: SpecFactory) -> None:
    before = torch.get_num_threads()
    r = train(tiny_spec(train={"threads": 2}, horizon=Horizon(steps=2)))
    assert r.device == "cpu (2 threads)" and torch.get_num_threads() == before


def test_dense_model_trains_without_routing_stats(tiny_spec: SpecFactory) -> None:
    r = train(tiny_spec(model={"dense": True, "top_k": 4, "iterations": 1}, horizon=Horizon(steps=2)))
    assert r.status == "ok" and r.routing == {}


def test_bpe_tokenizer_run(tiny_spec: SpecFactory) -> None:
    r = train(tiny_spec(model={"vocab_size": 300}, data={"tokenizer": "bpe:300"}, horizon=Horizon(steps=2)))
    assert r.status == "ok" and abs(r.val_curve[0][1] - math.log(300)) < 0.1


@pytest.mark.gpu
def test_cuda_run_reports_bf16_memory_and_mfu(tiny_spec: SpecFactory) -> None:
    spec = tiny_spec(train={"device": "cuda"}, horizon=Horizon(steps=6))
    r = train(spec)
    assert r.status == "ok" and r.device.startswith("cuda")
    assert r.peak_memory_bytes > r.allocated_after_step_bytes >= 16 * r.params_total
    assert r.estimated_memory_bytes == memory_estimate(spec.model, 4, 32, dtype="bf16", device="cuda").total
    assert r.final_val_loss < r.val_curve[0][1]
    name = torch.cuda.get_device_name()
    from runners.device import peak_bf16_flops

    assert (r.mfu is None) == (peak_bf16_flops(name) is None)
    if r.mfu is not None:
        assert 0 < r.mfu < 1


def test_a_broken_memory_measurement_does_not_fail_or_skew_the_trial(tiny_spec: SpecFactory,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import runners.memory

    reference = train(tiny_spec(horizon=Horizon(steps=4)))

    def broken(model: Any, step_fn: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            model(torch.zeros(1, 2, dtype=torch.long))  # part of a step ran, then the tracker broke
        raise NotImplementedError("Cannot access storage of SparseCsrTensorImpl")

    monkeypatch.setattr(runners.memory, "measure_step_memory", broken)
    r = train(tiny_spec(horizon=Horizon(steps=4)))
    assert r.status == "ok" and r.peak_memory_bytes is None and r.allocated_after_step_bytes is None
    assert r.train_curve == reference.train_curve and r.val_curve == reference.val_curve  # step re-run once


def test_two_trials_with_different_training_seeds_score_the_same_validation_windows(
        tiny_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import runners.train as train_module

    seen: list[Any] = []
    original = train_module.load_token_data

    def recording(*args: Any, **kwargs: Any) -> Any:
        data = original(*args, **kwargs)
        seen.append(np.array(data.val_ids))
        return data

    monkeypatch.setattr(train_module, "load_token_data", recording)
    a = train(tiny_spec(train={"seed": 0}, horizon=Horizon(steps=1)))
    b = train(tiny_spec(train={"seed": 7}, horizon=Horizon(steps=1)))
    assert len(seen) == 2 and np.array_equal(seen[0], seen[1]) and len(seen[0]) > 0
    assert a.train_curve != b.train_curve  # the training seed did change the run


def test_default_threads_follow_the_trial_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from coe_sweep.trial import TrainConfig
    from runners.device import available_cpus, resolve_device

    usable = len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets for a num_cpus=1 trial
    assert available_cpus() == 1 and resolve_device(TrainConfig(device="cpu")).threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4096")
    assert available_cpus() == usable
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert available_cpus() == usable
    assert resolve_device(TrainConfig(device="cpu", threads=3)).threads == 3


def test_compile_auto_stays_eager_for_a_short_trial(tiny_spec: SpecFactory, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="runners.train"):
        r = train(tiny_spec(train={"compile": "auto"}, horizon=Horizon(steps=6)))
    assert r.status == "ok" and not any("compiling" in rec.message for rec in caplog.records)


@pytest.mark.slow
def test_compile_on_trains_the_same_curve(tiny_spec: SpecFactory, caplog: pytest.LogCaptureFixture) -> None:
    eager = train(tiny_spec(train={"compile": "off"}, horizon=Horizon(steps=8)))
    with caplog.at_level("INFO", logger="runners.train"):
        compiled = train(tiny_spec(train={"compile": "on"}, horizon=Horizon(steps=8)))
    assert any("compiling the step" in rec.message for rec in caplog.records)
    assert compiled.status == "ok" and compiled.steps == 8
    assert [s for s, _ in compiled.train_curve] == [s for s, _ in eager.train_curve]
    for (_, a), (_, b) in zip(compiled.train_curve, eager.train_curve, strict=True):
        assert a == pytest.approx(b, rel=1e-4)  # steps 1-3 eager, 4-8 inductor (fp32 reorderings)
    assert compiled.final_val_loss == pytest.approx(eager.final_val_loss, rel=1e-4)


def test_routing_summary_has_every_experts_load() -> None:
    from runners.routing import summarise_routing

    stats = [[{"tokens_per_expert": [6, 2, 0, 0], "entropy": 1.0, "overlap_next": 0.25},
              {"tokens_per_expert": [2, 2, 2, 2], "entropy": 1.3}]]
    summary = summarise_routing(stats)
    assert [summary[f"L0.C0.E{e}.load"] for e in range(4)] == [3.0, 1.0, 0.0, 0.0]
    assert [summary[f"L0.C1.E{e}.load"] for e in range(4)] == [1.0] * 4
    assert summary["L0.C0.max_load"] == 3.0 and summary["dead_experts"] == 2.0 and summary["mean_overlap_next"] == 0.25
