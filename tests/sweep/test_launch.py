"""Simulated sweeps end to end on real Ray + Optuna + MLflow (sqlite), one Ray head for the module.

Each sweep connects to the module's head through `cluster.address` (the existing-cluster path); the
local-Ray path (started and stopped by `launch`) is exercised by tests/sweep/test_cli_launch.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import RayNode, mlflow_children, write_spec

from coe_sweep.spec import load_spec
from coe_sweep.sweep.driver import launch, sweep_dir

pytestmark = pytest.mark.slow


def _uri(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'mlflow.db'}"


def test_simulated_tpe_sweep_end_to_end_then_resume_trains_nothing(tmp_path: Path, ray_head: RayNode,
                                                                    capsys: pytest.CaptureFixture) -> None:
    spec = load_spec(write_spec(tmp_path, "e2e", trials=4, address=ray_head.address))
    out = launch(spec, simulate=True, progress=False)
    assert out.exit_code == 0 and out.n_failed == 0
    assert {label: len(b.ok) for label, b in out.budgets.items()} == {"2e10": 4, "6e10": 4}
    children = mlflow_children(_uri(tmp_path), "e2e")
    hashes = [r.data.tags["coe_sweep.config_hash"] for r in children]
    assert len(hashes) == 8 == len(set(hashes))
    records = {p.stem for p in (sweep_dir(spec) / "results").glob("*.json")}
    assert records == {f"{h}-s0" for h in hashes}
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["coe_sweep.status"] == "ok" and run.data.tags["coe_sweep.simulated"] == "true"
        assert run.data.params["model.iterations"] in ("1", "2") and run.data.params["budget_label"] in out.budgets
        assert run.data.metrics["final_val_loss"] > 0 and run.data.metrics["train_flops"] > 0
        parent = run.data.tags["mlflow.parentRunId"]
    import mlflow

    parent_run = mlflow.MlflowClient(_uri(tmp_path)).get_run(parent)
    assert parent_run.data.tags["coe_sweep.kind"] == "sweep"
    assert parent_run.data.tags["coe_sweep.spec_hash"] == spec.spec_hash()
    assert parent_run.info.status == "FINISHED"
    # best per budget is the minimum of what MLflow holds
    for label, b in out.budgets.items():
        logged = [r.data.metrics["final_val_loss"] for r in children if r.data.params["budget_label"] == label]
        assert b.best().result.final_val_loss == pytest.approx(min(logged))

    # relaunch: every trial is already finished -> nothing trained, nothing duplicated
    starts_before = (sweep_dir(spec) / "journal.jsonl").read_text().count('"start"')
    again = launch(spec, simulate=True, progress=False)
    assert again.n_resumed == len(again.trials) == 8
    assert (sweep_dir(spec) / "journal.jsonl").read_text().count('"start"') == starts_before
    assert len(mlflow_children(_uri(tmp_path), "e2e")) == 8

    from coe_sweep.cli import main

    assert main(["status", "e2e", "--tracking-uri", _uri(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "2e10" in text and "6e10" in text and "FINISHED" in text


def test_nsga2_multi_objective_returns_a_pareto_set(tmp_path: Path, ray_head: RayNode) -> None:
    spec = load_spec(write_spec(tmp_path, "nsga", algorithm="nsga2", trials=6, flops=[4e10],
                                objectives=["val_loss", "peak_memory_bytes"], address=ray_head.address,
                                space={"iterations": {"choice": [1, 2, 3]}, "top_k": {"choice": [1, 2]},
                                       "d_model": {"choice": [32, 64]}}))
    out = launch(spec, simulate=True, progress=False)
    assert out.exit_code == 0 and len(out.budgets["4e10"].ok) == 6
    front = out.pareto("4e10")
    assert front
    from coe_sweep.analysis import pareto_front

    ok = out.budgets["4e10"].ok
    frame = pd.DataFrame([{"status": "ok", "final_val_loss": t.result.final_val_loss,
                           "peak_memory_bytes": t.result.peak_memory_bytes} for t in ok])
    expected = {ok[i].identity.key for i in pareto_front(frame, [("final_val_loss", "min"),
                                                                 ("peak_memory_bytes", "min")])}
    assert {t.identity.key for t in front} == expected


def test_infeasible_suggestions_are_rejected_never_trained(tmp_path: Path, ray_head: RayNode,
                                                           capsys: pytest.CaptureFixture) -> None:
    spec = load_spec(write_spec(tmp_path, "feas", trials=3, flops=[4e10], address=ray_head.address,
                                extra={"constraints": ["top_k * iterations <= 2"]},
                                space={"iterations": {"choice": [1, 2, 3]}, "top_k": {"choice": [1, 2, 4]},
                                       "d_model": {"choice": [32, 64]}}))
    out = launch(spec, simulate=True, progress=False)
    budget = out.budgets["4e10"]
    assert len(budget.ok) == 3
    assert budget.rejected and all("constraint" in r.reason for r in budget.rejected.values())
    for run in mlflow_children(_uri(tmp_path), "feas"):
        assert int(run.data.params["model.top_k"]) * int(run.data.params["model.iterations"]) <= 2
    # `status` reads the same rejected count from MLflow (the parent run; rejected configs have no child run)
    from coe_sweep.cli import main
    from coe_sweep.tracking import TrackingStore

    assert TrackingStore(_uri(tmp_path)).sweep_metrics("feas")["rejected.4e10"] == len(budget.rejected)
    capsys.readouterr()
    assert main(["status", "feas", "--tracking-uri", _uri(tmp_path)]) == 0
    text = capsys.readouterr().out
    header, row = (next(line for line in text.splitlines() if key in line) for key in ("rejected", "4e10"))
    cells = dict(zip((c.strip() for c in header.split("┃")), (c.strip() for c in row.split("│")), strict=False))
    assert cells["rejected"] == str(len(budget.rejected)) and cells["done/planned"] == "3/3", text


def test_grid_runs_every_feasible_point_once(tmp_path: Path, ray_head: RayNode) -> None:
    space = {"iterations": {"choice": [1, 2]}, "top_k": {"choice": [1, 2]}, "d_model": {"choice": [32, 64]},
             "train.device": {"choice": ["cpu", "auto"]}}  # execution-only: same config hash, one trial
    spec = load_spec(write_spec(tmp_path, "grid", algorithm="grid", trials=None, flops=[4e10], space=space,
                                address=ray_head.address, extra={"constraints": ["top_k <= iterations"]}))
    out = launch(spec, simulate=True, progress=False)
    budget = out.budgets["4e10"]
    # 2 x 2 x 2 distinct configs, top_k <= iterations drops (iterations=1, top_k=2) for both widths
    assert len(budget.ok) == 6 and len(budget.rejected) == 2
    assert len({t.identity.config_hash for t in budget.trials}) == 6


def test_failed_trials_are_recorded_and_max_failures_stops(tmp_path: Path, ray_head: RayNode) -> None:
    space = {"train.lr": {"choice": [3e-3, 0.5]}, "iterations": {"choice": [1, 2]}, "d_model": {"choice": [32, 64]}}
    spec = load_spec(write_spec(tmp_path, "fail", algorithm="grid", trials=None, flops=[4e10], space=space,
                                address=ray_head.address, max_concurrent=1))
    out = launch(spec, simulate=True, progress=False)
    budget = out.budgets["4e10"]
    assert len(budget.ok) == 4 and len(budget.failed) == 4 and out.exit_code == 1
    failed_runs = [r for r in mlflow_children(_uri(tmp_path), "fail") if r.info.status == "FAILED"]
    assert len(failed_runs) == 4
    assert all(r.data.tags["coe_sweep.status"] == "diverged" and "lr" in r.data.tags["coe_sweep.reason"]
               for r in failed_runs)
    assert all(r.data.params["train.lr"] == "0.5" for r in failed_runs)

    spec2 = load_spec(write_spec(tmp_path, "fail-stop", algorithm="grid", trials=None, flops=[4e10, 8e10],
                                 space=space, address=ray_head.address, max_concurrent=1))
    stopped = launch(spec2, simulate=True, progress=False, max_failures=2)
    assert stopped.stopped_reason and "max_failures=2" in stopped.stopped_reason
    assert stopped.n_failed == 2 and stopped.exit_code == 1
    assert len(stopped.trials) < 16  # the sweep stopped: most of the 2 x 8 planned trials never started


def test_asha_prunes_or_completes_every_trial(tmp_path: Path, ray_head: RayNode) -> None:
    spec = load_spec(write_spec(tmp_path, "asha", algorithm="random", trials=6, flops=[8e10],
                                address=ray_head.address, train={"eval_interval": 100},
                                extra={"search.asha": {"enabled": True, "grace_period": 1,
                                                       "reduction_factor": 2}}))
    out = launch(spec, simulate=True, progress=False, simulate_trial_s=1.0)
    budget = out.budgets["8e10"]
    assert len(budget.ok) + len(budget.pruned) == 6 and not budget.failed
    for t in budget.pruned:
        record = json.loads((sweep_dir(spec) / "results" / f"{t.identity.config_hash}-s0.json").read_text())
        assert record["result"]["status"] == "pruned" and record["result"]["reason"].startswith("ASHA stopped it")
    statuses = {r.data.tags["coe_sweep.config_hash"]: (r.data.tags["coe_sweep.status"], r.info.status)
                for r in mlflow_children(_uri(tmp_path), "asha")}
    assert {statuses[t.identity.config_hash] for t in budget.pruned} <= {("pruned", "KILLED")}
    assert {statuses[t.identity.config_hash] for t in budget.ok} == {("ok", "FINISHED")}
    again = launch(spec, simulate=True, progress=False)  # pruned trials are finished: nothing reruns
    resumed = again.budgets["8e10"]
    assert len(resumed.resumed) == len(resumed.trials) == 6 and len(resumed.pruned) == len(budget.pruned)


def test_budgets_interleave_in_one_experiment_and_resume_loses_nothing(tmp_path: Path, ray_head: RayNode) -> None:
    """All budgets share one Tune experiment (the longest trials first, the short ones fill the slots at the
    end): a small-budget trial starts while the large budget still runs; a relaunch after lost records runs
    exactly the lost trials again, each (config, seed) once in MLflow and the store."""
    spec = load_spec(write_spec(tmp_path, "mix", algorithm="grid", trials=None, flops=[2e10, 6e10],
                                address=ray_head.address, extra={"search": {"algorithm": "grid", "seeds": 2}},
                                space={"iterations": {"choice": [1, 2]}, "d_model": {"choice": [32, 64]}}))
    first = launch(spec, simulate=True, progress=False, simulate_trial_s=0.3)
    assert first.stopped_reason is None and len(first.trials) == 16 and 0 < first.efficiency <= 1
    assert first.busy_slot_s > 16 * 0.3 and 0 < first.trials_efficiency <= 1 and first.slots == 2
    journal = [json.loads(line) for line in (sweep_dir(spec) / "journal.jsonl").read_text().splitlines()]
    events = [(e["event"], e["budget_label"]) for e in journal]
    starts = [label for event, label in events if event == "start"]
    assert starts[:8] == ["6e10"] * 8 and starts[8:] == ["2e10"] * 8, "the longest trials go first"
    last_large_finish = max(i for i, (event, label) in enumerate(events) if (event, label) == ("finish", "6e10"))
    assert events.index(("start", "2e10")) < last_large_finish, f"no overlap of the budgets: {events}"
    assert [p.name for p in (sweep_dir(spec) / "tune").iterdir()] == ["sweep-0"]  # one experiment, both budgets
    # drop three records of each budget, as if the driver had died before writing them: the relaunch
    # reruns exactly those, interleaved again, and nothing else
    records = sorted((sweep_dir(spec) / "results").glob("*.json"))
    by_budget: dict[str, list[Path]] = {}
    for p in records:
        by_budget.setdefault(json.loads(p.read_text())["identity"]["budget_label"], []).append(p)
    lost_paths = by_budget["2e10"][:3] + by_budget["6e10"][:3]
    lost = {p.stem for p in lost_paths}
    kept = {p.stem: p.stat().st_mtime_ns for p in records if p.stem not in lost}
    for p in lost_paths:
        p.unlink()
    import mlflow

    client = mlflow.MlflowClient(_uri(tmp_path))
    for run in mlflow_children(_uri(tmp_path), "mix"):
        if f"{run.data.tags['coe_sweep.config_hash']}-s{run.data.tags['coe_sweep.seed']}" in lost:
            client.delete_run(run.info.run_id)
    again = launch(spec, simulate=True, progress=False)
    assert again.n_resumed == 10 and len(again.trials) == 16 and again.exit_code == 0
    keys = [(r.data.tags["coe_sweep.config_hash"], r.data.tags["coe_sweep.seed"])
            for r in mlflow_children(_uri(tmp_path), "mix")]
    assert len(keys) == len(set(keys)) == 16
    after = {p.stem: p.stat().st_mtime_ns for p in (sweep_dir(spec) / "results").glob("*.json")}
    assert set(after) == lost | set(kept) and all(after[k] == kept[k] for k in kept), "a kept trial ran again"
    rerun = [json.loads(line) for line in (sweep_dir(spec) / "journal.jsonl").read_text().splitlines()][len(journal):]
    assert sorted(f"{e['config_hash']}-s{e['seed']}" for e in rerun if e["event"] == "start") == sorted(lost)
    assert sorted(p.name for p in (sweep_dir(spec) / "tune").iterdir()) == ["sweep-0", "sweep-1"]
