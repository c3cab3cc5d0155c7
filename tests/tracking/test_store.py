"""TrackingStore (read side) against a real sqlite MLflow store written by SweepTracker."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from coe_sweep.tracking import FINAL_METRICS, SweepNotFound, SweepTracker, TrackingStore, TrialNotFound
from coe_sweep.trial import RunResult
from tests.tracking.helpers import make_tracker, ok_result, trial_params


def _sweep(uri: str, journal: Path, spec_hash: str = "spec0001") -> tuple[SweepTracker, dict[str, str]]:
    """A small sweep: 2 ok trials, 1 diverged, 1 oom, 1 still running."""
    tracker = make_tracker(uri, journal, spec_hash=spec_hash)
    tracker.start()
    ids = {}
    for i, (h, result) in enumerate([("cfg1", ok_result(2.5)), ("cfg2", ok_result(2.25)),
                                     ("cfg3", RunResult(status="diverged", reason="nan loss at step 6")),
                                     ("cfg4", RunResult(status="oom", reason="memory cap exceeded")),
                                     ("cfg5", None)]):
        ids[h] = tracker.start_trial(h, trial_params(iterations=1 + i % 3, d_model=64 * (i + 1),
                                                     budget="1e12" if i < 3 else "1e13"), {})
        if result is not None:
            tracker.log_result(ids[h], result)
    return tracker, ids


def test_list_sweeps_counts_by_status(sqlite_uri: str, tmp_path: Path) -> None:
    tracker, _ = _sweep(sqlite_uri, tmp_path / "journal")
    store = TrackingStore(sqlite_uri)
    [summary] = store.list_sweeps()
    assert summary.id == tracker.parent_run_id and summary.name == "unit-sweep"
    assert summary.status == "RUNNING" and summary.spec_hash == "spec0001" and summary.simulated is False
    assert summary.n_trials == 5
    assert summary.counts == {"ok": 2, "diverged": 1, "oom": 1, "running": 1}
    assert summary.start_time is not None and summary.end_time is None
    tracker.finish("FINISHED")
    finished = store.sweep("unit-sweep")
    assert finished.status == "FINISHED" and finished.end_time >= finished.start_time


def test_trials_frame_columns_and_types(sqlite_uri: str, tmp_path: Path) -> None:
    _, ids = _sweep(sqlite_uri, tmp_path / "journal")
    frame = TrackingStore(sqlite_uri).trials_frame("unit-sweep").set_index("config_hash")
    required = ["run_id", "status", "reason", "budget_label", "budget_flops", "family", *FINAL_METRICS,
                "start_time", "end_time"]
    assert set(required) <= set(frame.columns)
    assert set(trial_params()) - {"budget_label", "budget_flops"} <= set(frame.columns)
    assert len(frame) == 5 and frame.loc["cfg2", "run_id"] == ids["cfg2"]
    assert frame["status"].to_dict() == {"cfg1": "ok", "cfg2": "ok", "cfg3": "diverged", "cfg4": "oom",
                                         "cfg5": "running"}
    assert frame.loc["cfg3", "reason"] == "nan loss at step 6"
    assert frame.loc["cfg2", "final_val_loss"] == 2.25
    assert frame["family"].to_dict() == {"cfg1": "moe", "cfg2": "coe", "cfg3": "coe", "cfg4": "moe", "cfg5": "coe"}
    assert frame["budget_label"].tolist() == ["1e12"] * 3 + ["1e13"] * 2
    assert frame["budget_flops"].tolist() == [1e12] * 3 + [1e13] * 2
    dtypes = frame.dtypes
    assert dtypes["model.d_model"] == "int64" and dtypes["model.iterations"] == "int64"
    assert dtypes["model.dense"] == "bool" and dtypes["model.inner_residual"] == "bool"
    assert dtypes["train.lr"] == "float64" and dtypes["model.aux_loss_alpha"] == "float64"
    assert dtypes["budget_flops"] == "float64" and dtypes["final_val_loss"] == "float64"
    assert dtypes["peak_memory_bytes"] == "float64" and dtypes["simulated"] == "bool"
    assert frame.loc["cfg1", "data.tokenizer"] == "byte"
    assert frame["model.n_kv_heads"].isna().all()
    assert str(dtypes["start_time"]) == "Int64" and frame["end_time"].isna().tolist() == [False] * 4 + [True]
    assert frame.loc["cfg1", "model.d_model"] == 64 and frame.loc["cfg5", "model.d_model"] == 320


def test_trials_frame_by_id_or_name_picks_latest_parent(sqlite_uri: str, tmp_path: Path) -> None:
    old, _ = _sweep(sqlite_uri, tmp_path / "j1", spec_hash="spec0001")
    new = make_tracker(sqlite_uri, tmp_path / "j2", spec_hash="spec0002")
    new.start()
    new.start_trial("only", trial_params(), {})
    store = TrackingStore(sqlite_uri)
    assert store.trials_frame("unit-sweep")["config_hash"].tolist() == ["only"]
    assert len(store.trials_frame(old.parent_run_id)) == 5
    assert [s.id for s in store.list_sweeps()] == [new.parent_run_id, old.parent_run_id]


def test_incremental_refresh_returns_only_updated_runs(sqlite_uri: str, tmp_path: Path) -> None:
    tracker, ids = _sweep(sqlite_uri, tmp_path / "journal")
    store = TrackingStore(sqlite_uri)
    full = store.trials_frame("unit-sweep")
    watermark_ms = int(full[["start_time", "end_time"]].max().max())
    while int(time.time() * 1000) <= watermark_ms:  # the next write must carry a later millisecond
        time.sleep(0.001)
    delta = store.trials_frame("unit-sweep", updated_after_ms=watermark_ms)
    assert delta["config_hash"].tolist() == ["cfg5"]  # nothing changed: only the running trial comes back
    tracker.log_result(ids["cfg5"], ok_result(2.0))
    new = tracker.start_trial("cfg6", trial_params(d_model=512), {})
    delta = store.trials_frame("unit-sweep", updated_after_ms=watermark_ms).set_index("config_hash")
    assert sorted(delta.index) == ["cfg5", "cfg6"]
    assert delta.loc["cfg5", "status"] == "ok" and delta.loc["cfg5", "final_val_loss"] == 2.0
    assert delta.loc["cfg6", "run_id"] == new and delta.loc["cfg6", "status"] == "running"
    assert list(delta.reset_index().columns[:3]) == ["config_hash", "run_id", "status"]
    with pytest.raises(ValueError, match="updated_after_ms=-5"):
        store.trials_frame("unit-sweep", updated_after_ms=-5)


def test_trial_detail_params_finals_curves(sqlite_uri: str, tmp_path: Path) -> None:
    _, ids = _sweep(sqlite_uri, tmp_path / "journal")
    store = TrackingStore(sqlite_uri)
    detail = store.trial(ids["cfg2"])
    expected = ok_result(2.25)
    assert detail.config_hash == "cfg2" and detail.status == "ok" and detail.run_status == "FINISHED"
    assert detail.curves == {"train_loss": expected.train_curve, "val_loss": expected.val_curve}
    assert detail.finals["final_val_loss"] == 2.25 and "train_loss" not in detail.finals
    assert detail.params["model.d_model"] == 128 and detail.params["model.dense"] is False
    assert detail.params["budget_label"] == "1e12" and detail.tags["coe_sweep.kind"] == "trial"
    assert detail.sweep_id == store.sweep("unit-sweep").id


def test_unknown_sweep_and_trial_raise_not_found(sqlite_uri: str, tmp_path: Path) -> None:
    tracker, _ = _sweep(sqlite_uri, tmp_path / "journal")
    store = TrackingStore(sqlite_uri)
    with pytest.raises(SweepNotFound, match="no-such-sweep.*known sweeps: unit-sweep"):
        store.trials_frame("no-such-sweep")
    with pytest.raises(SweepNotFound):
        store.sweep("0" * 32)
    with pytest.raises(TrialNotFound, match="run_id="):
        store.trial("f" * 32)
    with pytest.raises(TrialNotFound):  # a sweep's parent run is not a trial
        store.trial(tracker.parent_run_id)
    with pytest.raises(TrialNotFound):
        store.trial("../etc/passwd")


def test_empty_store_and_empty_sweep(sqlite_uri: str, tmp_path: Path) -> None:
    store = TrackingStore(sqlite_uri)
    assert store.list_sweeps() == []
    make_tracker(sqlite_uri, tmp_path / "journal").start()
    frame = store.trials_frame("unit-sweep")
    assert isinstance(frame, pd.DataFrame) and frame.empty
    assert {"run_id", "status", "final_val_loss", "start_time"} <= set(frame.columns)
    assert store.spec_yaml("unit-sweep").startswith("name: unit-sweep")


def test_trials_frame_has_arm_seed_and_trial_id(sqlite_uri: str, tmp_path: Path) -> None:
    """Seeds of one config are separate trials with one config hash; arm comes from its tag (else the family)."""
    tracker = make_tracker(sqlite_uri, tmp_path / "journal")
    tracker.start()
    for seed in (0, 1, 2):
        run = tracker.start_trial("cfgseed", {**trial_params(), "arm": "coe_2_k", "seed": seed},
                                  {"coe_sweep.arm": "coe_2_k"}, seed=seed)
        tracker.log_result(run, ok_result(2.0 + seed / 10))
    tracker.start_trial("cfgold", trial_params(iterations=1), {})  # no arm tag: the family stands in
    frame = TrackingStore(sqlite_uri).trials_frame("unit-sweep")
    assert {"arm", "seed", "trial_id"} <= set(frame.columns) and "seed" not in frame.columns[:9]
    assert frame["seed"].dtype == "int64"
    seeds = frame[frame["config_hash"] == "cfgseed"].sort_values("seed")
    assert seeds["seed"].tolist() == [0, 1, 2] and set(seeds["arm"]) == {"coe_2_k"}
    assert seeds["trial_id"].tolist() == ["cfgseed-s0", "cfgseed-s1", "cfgseed-s2"]
    assert seeds["final_val_loss"].tolist() == pytest.approx([2.0, 2.1, 2.2])
    old = frame[frame["config_hash"] == "cfgold"].iloc[0]
    assert (old["arm"], old["seed"], old["trial_id"]) == ("moe", 0, "cfgold-s0")
