"""SweepTracker against a real sqlite MLflow store: the layout of DESIGN.md, resume without duplicates."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from coe_sweep.tracking import SweepTracker, TrackingStore
from coe_sweep.trial import RunResult
from tests.tracking.helpers import SPEC_YAML, children, history, make_tracker, ok_result, trial_params


def test_start_lays_out_experiment_parent_and_spec_artifact(sqlite_uri: str, tmp_path: Path) -> None:
    tracker = make_tracker(sqlite_uri, tmp_path / "journal")
    tracker.check_reachable()
    parent = tracker.start()
    client = MlflowClient(sqlite_uri)
    experiment = client.get_experiment_by_name("unit-sweep")
    assert experiment is not None and experiment.experiment_id == tracker.experiment_id
    run = client.get_run(parent)
    assert run.data.tags["coe_sweep.kind"] == "sweep"
    assert run.data.tags["coe_sweep.spec_hash"] == "spec0001"
    assert run.data.tags["coe_sweep.simulated"] == "false"
    assert run.info.status == "RUNNING" and run.info.run_name == "unit-sweep"
    assert [f.path for f in client.list_artifacts(parent)] == ["spec.yaml"]
    assert Path(client.download_artifacts(parent, "spec.yaml", str(tmp_path))).read_text() == SPEC_YAML
    # artifacts live beside the sqlite file, not in the working directory
    assert str(Path(sqlite_uri.removeprefix("sqlite:///")).parent) in run.info.artifact_uri
    tracker.finish("FINISHED")
    assert client.get_run(parent).info.status == "FINISHED"


def test_same_spec_resumes_parent_other_spec_or_simulated_gets_new(sqlite_uri: str, tmp_path: Path) -> None:
    first = make_tracker(sqlite_uri, tmp_path / "j1")
    parent = first.start()
    first.finish("KILLED")
    again = make_tracker(sqlite_uri, tmp_path / "j1")
    assert again.start() == parent
    client = MlflowClient(sqlite_uri)
    assert client.get_run(parent).info.status == "RUNNING"
    assert len(client.list_artifacts(parent)) == 1  # spec logged once
    other = make_tracker(sqlite_uri, tmp_path / "j2", spec_hash="spec0002")
    simulated = make_tracker(sqlite_uri, tmp_path / "j3", simulated=True)
    assert len({parent, other.start(), simulated.start()}) == 3
    assert other.experiment_id == simulated.experiment_id == again.experiment_id


def test_start_trial_finds_or_creates_and_never_duplicates(sqlite_uri: str, tmp_path: Path) -> None:
    tracker = make_tracker(sqlite_uri, tmp_path / "journal")
    parent = tracker.start()
    run_id = tracker.start_trial("cfg0001", trial_params(), {"coe_sweep.budget_label": "1e12"})
    assert tracker.start_trial("cfg0001", trial_params(), {}) == run_id
    tracker.log_result(run_id, RunResult(status="failed", reason="RuntimeError: boom"))
    # a relaunched driver: new tracker, same spec -> same parent, same child (set RUNNING again)
    relaunched = make_tracker(sqlite_uri, tmp_path / "journal")
    assert relaunched.start() == parent
    assert relaunched.start_trial("cfg0001", trial_params(), {}) == run_id
    client = MlflowClient(sqlite_uri)
    kids = children(client, parent)
    assert [k.info.run_id for k in kids] == [run_id]
    child = kids[0]
    assert child.info.status == "RUNNING"
    assert child.data.tags["mlflow.parentRunId"] == parent
    assert child.data.tags["coe_sweep.kind"] == "trial"
    assert child.data.tags["coe_sweep.config_hash"] == "cfg0001"
    assert child.data.tags["coe_sweep.family"] == "coe"
    assert child.data.tags["coe_sweep.budget_label"] == "1e12"
    assert child.data.params["model.d_model"] == "64"
    assert child.data.params["model.dense"] == "False"
    assert child.data.params["train.lr"] == "0.003"
    assert child.data.params["budget_flops"] == "1000000000000.0"
    second = relaunched.start_trial("cfg0002", trial_params(iterations=1), {})
    assert second != run_id and len(children(client, parent)) == 2
    assert client.get_run(second).data.tags["coe_sweep.family"] == "moe"


def test_progress_and_result_log_each_curve_point_once(sqlite_uri: str, tmp_path: Path) -> None:
    tracker = make_tracker(sqlite_uri, tmp_path / "journal")
    tracker.start()
    run_id = tracker.start_trial("cfg0001", trial_params(), {})
    result = ok_result()
    for step, loss in result.train_curve[:2]:
        tracker.log_progress(run_id, step, {"train_loss": loss, "step": step})
    tracker.log_progress(run_id, 20, {"train_loss": result.train_curve[1][1]})  # repeated report: skipped
    tracker.log_result(run_id, result)
    client = MlflowClient(sqlite_uri)
    assert history(client, run_id, "train_loss") == sorted(result.train_curve)
    assert history(client, run_id, "val_loss") == sorted(result.val_curve)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert metrics["final_val_loss"] == result.final_val_loss
    assert metrics["train_flops"] == result.flops
    assert metrics["peak_memory_bytes"] == result.peak_memory_bytes
    assert metrics["allocated_after_step_bytes"] == result.allocated_after_step_bytes
    assert metrics["routing.per_layer.overlap"] == 0.25
    assert "mfu" not in metrics  # None is not logged
    assert run.data.tags["coe_sweep.status"] == "ok"
    assert "result.json" in [f.path for f in client.list_artifacts(run_id)]
    # a restarted trial in a relaunched driver keeps the points logged before
    relaunched = make_tracker(sqlite_uri, tmp_path / "journal")
    relaunched.start()
    assert relaunched.start_trial("cfg0001", trial_params(), {}) == run_id
    relaunched.log_progress(run_id, 10, {"train_loss": 99.0})
    relaunched.log_result(run_id, result)
    assert history(client, run_id, "train_loss") == sorted(result.train_curve)


def test_failed_trial_keeps_run_with_status_and_reason(sqlite_uri: str, tmp_path: Path) -> None:
    tracker = make_tracker(sqlite_uri, tmp_path / "journal")
    tracker.start()
    run_id = tracker.start_trial("cfg0bad", trial_params(), {})
    tracker.log_progress(run_id, 5, {"train_loss": 3.0})
    tracker.log_result(run_id, RunResult(status="diverged", reason="nan loss at step 6", steps=6,
                                         final_train_loss=math.nan, train_curve=[(5, 3.0), (6, math.nan)]))
    run = MlflowClient(sqlite_uri).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["coe_sweep.status"] == "diverged"
    assert run.data.tags["coe_sweep.reason"] == "nan loss at step 6"
    assert math.isnan(run.data.metrics["final_train_loss"])
    detail = TrackingStore(sqlite_uri).trial(run_id)
    assert detail.status == "diverged" and detail.reason == "nan loss at step 6"
    assert detail.curves["train_loss"][0] == (5, 3.0) and math.isnan(detail.curves["train_loss"][1][1])


def test_finished_trials_are_those_with_a_result(sqlite_uri: str, tmp_path: Path) -> None:
    tracker = make_tracker(sqlite_uri, tmp_path / "journal")
    tracker.start()
    ok = tracker.start_trial("cfg00ok", trial_params(), {})
    tracker.log_result(ok, ok_result(2.25))
    oom = tracker.start_trial("cfg0oom", trial_params(d_model=128), {})
    tracker.log_result(oom, RunResult(status="oom", reason="memory cap 1e6 bytes exceeded"))
    tracker.start_trial("cfg0run", trial_params(d_model=256), {})  # still running: not finished
    seed2 = tracker.start_trial("cfg00ok", trial_params(), {}, seed=2)  # the same config, another seed
    assert seed2 != ok
    tracker.log_result(seed2, ok_result(2.5))
    relaunched = make_tracker(sqlite_uri, tmp_path / "journal")
    relaunched.start()
    finished = relaunched.finished_trials()
    assert set(finished) == {("cfg00ok", 0), ("cfg0oom", 0), ("cfg00ok", 2)}
    first = finished[("cfg00ok", 0)]
    assert first.run_id == ok and first.status == "ok" and first.seed == 0
    assert first.metrics["final_val_loss"] == 2.25 and finished[("cfg00ok", 2)].metrics["final_val_loss"] == 2.5
    assert first.params["model.d_model"] == 64
    assert first.budget_label == "1e12"
    assert finished[("cfg0oom", 0)].run_status == "FAILED" and finished[("cfg0oom", 0)].reason.startswith("memory cap")
    assert first.result().final_val_loss == 2.25 and first.result().status == "ok"
    import mlflow

    run = mlflow.MlflowClient(sqlite_uri).get_run(seed2)
    assert run.info.run_name == "cfg00ok-s2" and run.data.tags["coe_sweep.trial_id"] == "cfg00ok-s2"
    assert run.data.tags["coe_sweep.seed"] == "2"
    # a relaunch finds the seed's run again instead of making a second one
    assert relaunched.start_trial("cfg00ok", trial_params(), {}, seed=2) == seed2


@pytest.mark.parametrize(("call", "message"), [
    (lambda t: t.start_trial("bad hash'", trial_params(), {}), "config_hash="),
    (lambda t: t.start_trial("cfg1", {"model.layers": [1, 2]}, {}), "model.layers"),
    (lambda t: t.log_progress("run", -1, {"train_loss": 1.0}), "step=-1"),
    (lambda t: t.log_progress("run", 1, {"train_loss": "low"}), "train_loss"),
    (lambda t: t.log_result("run", RunResult(status="weird")), "status='weird'"),  # type: ignore[arg-type]
    (lambda t: t.finish("DONE"), "status='DONE'"),
])
def test_bad_input_is_refused_naming_the_field(sqlite_uri: str, tmp_path: Path, call, message: str) -> None:
    tracker = make_tracker(sqlite_uri, tmp_path / "journal")
    tracker.start()
    with pytest.raises((ValueError, TypeError)) as info:
        call(tracker)
    assert message in str(info.value)


def test_trial_methods_need_start(sqlite_uri: str, tmp_path: Path) -> None:
    tracker = SweepTracker(sqlite_uri, "s", SPEC_YAML, "h1", journal_dir=tmp_path)
    with pytest.raises(RuntimeError, match="start"):
        tracker.start_trial("cfg", {}, {})


def test_experiment_opens_as_model_training_and_says_if_simulated(sqlite_uri: str, tmp_path: Path) -> None:
    """MLflow 3 opens an experiment by mlflow.experimentKind (untagged: the GenAI traces view). A new experiment
    and one created before the tag existed both end up tagged; coe_sweep.simulated on the experiment says whether
    its sweeps are simulated, and "mixed" once it holds both."""
    client = MlflowClient(sqlite_uri)
    simulated = make_tracker(sqlite_uri, tmp_path / "j1", simulated=True)
    simulated.start()
    tags = client.get_experiment(simulated.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert tags["coe_sweep.simulated"] == "true"
    trained = make_tracker(sqlite_uri, tmp_path / "j2")
    trained.start()
    assert client.get_experiment(trained.experiment_id).tags["coe_sweep.simulated"] == "mixed"
    old = client.create_experiment("older-sweep")  # as a writer before this tag left it
    make_tracker(sqlite_uri, tmp_path / "j3", name="older-sweep").start()
    tags = client.get_experiment(old).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development" and tags["coe_sweep.simulated"] == "false"
