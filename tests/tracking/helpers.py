"""Shared builders for the tracking tests: a tracker, trial params shaped like flat_params(run_spec), results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from coe_sweep.tracking import RetryPolicy, SweepTracker
from coe_sweep.trial import RunResult

SPEC_YAML = "name: unit-sweep\nbudget:\n  flops: [1.0e12, 1.0e13]\n"


def make_tracker(uri: str, journal_dir: Path, *, name: str = "unit-sweep", spec_hash: str = "spec0001",
                 simulated: bool = False, retry: RetryPolicy | None = None) -> SweepTracker:
    return SweepTracker(uri, name, SPEC_YAML, spec_hash, journal_dir=journal_dir, simulated=simulated, retry=retry)


def trial_params(iterations: int = 2, d_model: int = 64, lr: float = 3e-3, budget: str = "1e12") -> dict[str, Any]:
    return {
        "model.d_model": d_model, "model.iterations": iterations, "model.top_k": 2, "model.n_experts": 8,
        "model.dense": False, "model.inner_residual": True, "model.n_kv_heads": None,
        "model.router_mode": "independent", "model.aux_loss_alpha": 0.001,
        "train.lr": lr, "train.batch_size": 16, "train.eval_batches": None,
        "data.source": "builtin:arithmetic", "data.tokenizer": "byte",
        "horizon.tokens": 40_960, "budget_label": budget, "budget_flops": float(budget),
    }


def ok_result(final_val: float = 2.5, steps: tuple[int, ...] = (10, 20, 30)) -> RunResult:
    train = [(s, 4.0 - s / 20) for s in steps]
    val = [(s, final_val + (steps[-1] - s) / 100) for s in steps]
    return RunResult(status="ok", steps=steps[-1], tokens=40_960, flops=1e12, train_flops_per_token=2.44e7,
                     params_total=1_000_000, params_active=400_000, final_train_loss=train[-1][1],
                     final_val_loss=final_val, train_curve=train, val_curve=val, peak_memory_bytes=123_456_789,
                     allocated_after_step_bytes=16_000_000, estimated_memory_bytes=120_000_000,
                     tokens_per_s=9_876.5, wall_s=4.2, routing={"entropy": 1.5, "per_layer": {"overlap": 0.25}})


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def children(client: MlflowClient, parent_run_id: str) -> list[Any]:
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                              max_results=1000)
