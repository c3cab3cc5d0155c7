"""A sweep of data-parallel trials on real Ray (Train V2 inside Tune), real gloo, real training and MLflow
(sqlite): `cluster.workers_per_trial: 2` runs each trial on two DDP workers, records it like any other
trial, and its losses follow the single-process training of the same RunSpec. The nccl/CUDA branch cannot
run here (no GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweep_helpers import RayNode, mlflow_children, write_spec

from coe_sweep.search.candidates import budgets, plan_trial
from coe_sweep.spec import load_spec
from coe_sweep.sweep.driver import launch, sweep_dir
from coe_sweep.trial import RunResult, TrialIdentity
from runners.train import train

pytestmark = pytest.mark.slow

STEPS, BATCH, SEQ = 12, 8, 32
LOSS_ATOL = 1e-5  # see tests/runners/test_distributed.py: fp32 all-reduce order, measured max 9.5e-7


def test_two_worker_trials_run_under_tune_and_record_like_any_other(tmp_path: Path, ray_head: RayNode) -> None:
    path = write_spec(tmp_path, "ddp", algorithm="grid", trials=None, address=ray_head.address, max_concurrent=1,
                      space={"iterations": {"choice": [2]}, "d_model": {"choice": [32]}},
                      train={"batch_size": BATCH, "seq_len": SEQ, "eval_interval": 6},
                      extra={"budget": {"tokens": STEPS * BATCH * SEQ}})
    text = path.read_text().replace("cluster:\n", "cluster:\n  workers_per_trial: 2\n", 1)
    path.write_text(text.replace("cpus_per_trial: 1", "cpus_per_trial: 2"))
    spec = load_spec(path)
    out = launch(spec, progress=False)
    assert out.exit_code == 0 and out.n_failed == 0 and len(out.trials) == 1

    children = mlflow_children(f"sqlite:///{tmp_path / 'mlflow.db'}", "ddp")
    assert len(children) == 1
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["coe_sweep.status"] == "ok"
        assert run.data.metrics["train_flops"] > 0 and run.data.metrics["peak_memory_bytes"] > 0

    for record_path in sorted((sweep_dir(spec) / "results").glob("*.json")):
        record = json.loads(record_path.read_text())
        result, identity = RunResult.from_dict(record["result"]), TrialIdentity.from_dict(record["identity"])
        assert result.workers == 2 and result.steps == STEPS
        assert len(result.peak_memory_per_worker_bytes) == 2
        assert result.peak_memory_bytes == max(result.peak_memory_per_worker_bytes) > 0
        plan = plan_trial(spec, budgets(spec)[0], dict(identity.point))
        assert plan.run_spec is not None and plan.config_hash == identity.config_hash
        one = train(plan.run_spec.with_seed(identity.seed))  # the same RunSpec on one process
        assert result.flops == pytest.approx(one.flops) and result.tokens == one.tokens
        pairs = list(zip(one.train_curve + one.val_curve, result.train_curve + result.val_curve, strict=True))
        assert all(s1 == s2 for (s1, _), (s2, _) in pairs)
        assert max(abs(a - b) for (_, a), (_, b) in pairs) < LOSS_ATOL
