"""The same layout against a real `mlflow server` process, and the server-down fault: nothing lost, nothing twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from coe_sweep.tracking import TrackingStore
from coe_sweep.trial import RunResult
from tests.tracking.conftest import FAST_RETRY, MlflowServer
from tests.tracking.helpers import SPEC_YAML, children, history, make_tracker, ok_result, trial_params

pytestmark = pytest.mark.slow


def test_layout_over_a_real_server(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    uri = mlflow_server.uri
    tracker = make_tracker(uri, tmp_path / "journal", name="server-layout", retry=FAST_RETRY)
    tracker.check_reachable(timeout_s=5)
    parent = tracker.start()
    run_id = tracker.start_trial("cfg0001", trial_params(), {})
    assert tracker.start_trial("cfg0001", trial_params(), {}) == run_id
    tracker.log_progress(run_id, 10, {"train_loss": 3.5})
    result = ok_result(2.5)
    tracker.log_result(run_id, result)
    failed = tracker.start_trial("cfg0002", trial_params(iterations=1), {})
    tracker.log_result(failed, RunResult(status="failed", reason="RuntimeError: worker died"))
    tracker.finish("FINISHED")
    assert tracker.pending_writes == 0

    relaunched = make_tracker(uri, tmp_path / "journal", name="server-layout", retry=FAST_RETRY)
    assert relaunched.start() == parent
    assert relaunched.start_trial("cfg0001", trial_params(), {}) == run_id
    assert set(relaunched.finished_trials()) == {("cfg0002", 0)}  # cfg0001 was restarted: RUNNING again
    client = MlflowClient(uri)
    assert len(children(client, parent)) == 2
    assert history(client, run_id, "train_loss") == sorted(result.train_curve)
    assert history(client, run_id, "val_loss") == sorted(result.val_curve)

    store = TrackingStore(uri)
    [summary] = [s for s in store.list_sweeps() if s.name == "server-layout"]
    assert summary.id == parent and summary.counts == {"running": 1, "failed": 1}
    frame = store.trials_frame("server-layout").set_index("config_hash")
    assert frame.loc["cfg0002", "reason"] == "RuntimeError: worker died"
    assert frame.loc["cfg0001", "final_val_loss"] == 2.5 and frame["model.d_model"].dtype == "int64"
    assert store.trial(run_id).curves["val_loss"] == result.val_curve
    assert store.spec_yaml(parent) == SPEC_YAML


def test_server_stopped_mid_sweep_loses_nothing(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    uri, journal = mlflow_server.uri, tmp_path / "journal"
    tracker = make_tracker(uri, journal, name="server-fault", retry=FAST_RETRY)
    parent = tracker.start()
    first = tracker.start_trial("cfg0001", trial_params(), {})
    result = ok_result(2.5, steps=(10, 20, 30, 40))
    tracker.log_progress(first, 10, {"train_loss": result.train_curve[0][1]})

    mlflow_server.stop()
    start = time.monotonic()
    tracker.log_progress(first, 20, {"train_loss": result.train_curve[1][1], "val_loss": result.val_curve[1][1]})
    assert time.monotonic() - start < 10  # bounded retries, then the journal
    tracker.log_result(first, result)
    second = tracker.start_trial("cfg0002", trial_params(iterations=1), {})  # created while down
    assert second.startswith("pending:")
    tracker.log_progress(second, 10, {"train_loss": 4.0})
    tracker.log_result(second, RunResult(status="oom", reason="memory cap exceeded"))
    assert tracker.pending_writes >= 5 and tracker.journal.path.exists()
    assert tracker.flush() == tracker.pending_writes > 0  # still down: kept

    mlflow_server.start()
    assert tracker.flush() == 0
    assert tracker.flush() == 0  # a second replay finds nothing left to send
    client = MlflowClient(uri)
    kids = {k.data.tags["coe_sweep.config_hash"]: k for k in children(client, parent)}
    assert sorted(kids) == ["cfg0001", "cfg0002"]
    assert history(client, first, "train_loss") == sorted(result.train_curve)  # each step exactly once
    assert history(client, first, "val_loss") == sorted(result.val_curve)
    assert kids["cfg0001"].info.status == "FINISHED" and kids["cfg0001"].data.metrics["final_val_loss"] == 2.5
    second_id = kids["cfg0002"].info.run_id
    assert history(client, second_id, "train_loss") == [(10, 4.0)]
    assert kids["cfg0002"].info.status == "FAILED" and kids["cfg0002"].data.tags["coe_sweep.status"] == "oom"
    assert kids["cfg0002"].data.params["model.iterations"] == "1"
    tracker.log_progress(second, 20, {"train_loss": 3.0})  # the pending ref keeps working after replay
    assert history(client, second_id, "train_loss") == [(10, 4.0), (20, 3.0)]

    # driver dies while the server is down; the next launch replays the journal in start()
    mlflow_server.stop()
    third = tracker.start_trial("cfg0003", trial_params(d_model=128), {})
    tracker.log_result(third, ok_result(2.0))
    assert tracker.pending_writes > 0
    del tracker
    mlflow_server.start()
    relaunched = make_tracker(uri, journal, name="server-fault", retry=FAST_RETRY)
    assert relaunched.start() == parent and relaunched.pending_writes == 0
    finished = relaunched.finished_trials()
    assert set(finished) == {("cfg0001", 0), ("cfg0002", 0), ("cfg0003", 0)}  # (config, seed)
    assert finished[("cfg0003", 0)].metrics["final_val_loss"] == 2.0
    assert history(client, finished[("cfg0003", 0)].run_id, "val_loss") == sorted(ok_result(2.0).val_curve)
    assert len(children(client, parent)) == 3
    assert not (journal / "journal.rejected.jsonl").exists()
