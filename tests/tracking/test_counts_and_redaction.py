"""Trial counts kept on the parent run (listing sweeps reads no trial) and the one redaction of credentials,
against real sqlite MLflow stores written by SweepTracker."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from coe_sweep.tracking import TrackingStore
from coe_sweep.tracking.connection import RedactingFilter, install_redaction, redact, redact_uri, short_error
from coe_sweep.tracking.names import SPEC_ARTIFACT, TAG_TRIAL_COUNTS
from coe_sweep.tracking.ops import trial_status
from coe_sweep.trial import RunResult
from tests.tracking.helpers import children, make_tracker, ok_result, trial_params

STATUSES = [("a", ok_result(2.5)), ("b", ok_result(2.2)), ("c", RunResult(status="diverged", reason="nan")),
            ("d", RunResult(status="failed", reason="boom")), ("e", None), ("f", "interrupted")]


def _sweep(uri: str, journal: Path) -> tuple[object, dict[str, str]]:
    tracker = make_tracker(uri, journal)
    tracker.start()
    ids = {}
    for h, result in STATUSES:
        ids[h] = tracker.start_trial(h, trial_params(), {})
        if result == "interrupted":
            tracker.mark_interrupted(ids[h], "stopped by the user")
        elif result is not None:
            tracker.log_result(ids[h], result)
    return tracker, ids


def _child_counts(uri: str, parent: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in children(MlflowClient(uri), parent):
        counts[trial_status(run)] = counts.get(trial_status(run), 0) + 1
    return counts


def test_listing_reads_the_counts_on_the_parent_run_not_the_trials(sqlite_uri: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tracker, _ = _sweep(sqlite_uri, tmp_path / "journal")
    expected = {"ok": 2, "diverged": 1, "failed": 1, "running": 1, "killed": 1}
    assert _child_counts(sqlite_uri, tracker.parent_run_id) == expected
    store = TrackingStore(sqlite_uri)
    monkeypatch.setattr(store, "_children", lambda *a, **k: pytest.fail("listing sweeps read the trials"))
    [summary] = store.list_sweeps()
    assert summary.counts == expected and summary.n_trials == 6


def test_a_sweep_without_counts_is_counted_from_its_trials_and_a_resume_backfills(sqlite_uri: str,
                                                                                  tmp_path: Path) -> None:
    tracker, _ = _sweep(sqlite_uri, tmp_path / "journal")
    client = MlflowClient(sqlite_uri)
    client.delete_tag(tracker.parent_run_id, TAG_TRIAL_COUNTS)  # as a sweep written before the counts existed
    expected = {"ok": 2, "diverged": 1, "failed": 1, "running": 1, "killed": 1}
    assert TrackingStore(sqlite_uri).list_sweeps()[0].counts == expected
    resumed = make_tracker(sqlite_uri, tmp_path / "journal2")
    assert resumed.start() == tracker.parent_run_id
    resumed.log_result(resumed.start_trial("e", trial_params(), {}), ok_result(2.0))  # the running one ends
    tags = client.get_run(tracker.parent_run_id).data.tags
    assert TAG_TRIAL_COUNTS in tags
    assert TrackingStore(sqlite_uri).list_sweeps()[0].counts == {"ok": 3, "diverged": 1, "failed": 1, "killed": 1}
    assert _child_counts(sqlite_uri, tracker.parent_run_id) == {"ok": 3, "diverged": 1, "failed": 1, "killed": 1}


@pytest.mark.parametrize("text, uris, leaked", [
    ("http://user:s3cret-pw@host:5000/api", (), "s3cret-pw"),
    ("API request to http://u:p%40ss-word@127.0.0.1:9/api/2.0 failed", (), "p%40ss-word"),
    ("'postgresql+psycopg2://mlflow:pg-pass-1@db:5432/mlflow'", (), "pg-pass-1"),
    ("failed: p@ss-word-9 rejected", ("http://u:p%40ss-word-9@h",), "p@ss-word-9"),
    ("x=http://a:one-pass@h y=https://b:two-pass@k", (), "pass@"),
])
def test_redact_removes_every_form_of_the_password(text: str, uris: tuple[str, ...], leaked: str) -> None:
    clean = redact(text, *uris)
    assert leaked not in clean and "***" in clean


def test_redact_keeps_everything_else() -> None:
    assert redact("sqlite:////tmp/a:b/mlflow.db http://127.0.0.1:5000/x") == \
        "sqlite:////tmp/a:b/mlflow.db http://127.0.0.1:5000/x"
    assert redact_uri("http://user:pw@host:5000/p?q=1") == "http://user:***@host:5000/p?q=1"
    assert short_error(ValueError("first http://u:pass-xyz@h line\nsecond"), limit=40) == "first http://u:***@h line"


def test_credential_env_values_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "env-secret-42")
    assert redact("auth failed for env-secret-42") == "auth failed for ***"


def test_logging_filter_redacts_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        handler.addFilter(RedactingFilter(["http://u:tb-secret-7@h"]))
        try:
            raise RuntimeError("API request to http://u:tb-secret-7@h/api failed")
        except RuntimeError:
            logger.exception("store %s down", "http://u:tb-secret-7@h")
        logger.warning("the token tb-secret-7 again")
        install_redaction("http://u:tb-secret-7@h")  # idempotent: one filter per handler
        install_redaction("http://u:tb-secret-7@h")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "tb-secret-7" not in text and "Traceback" in text and text.count("***") >= 3


def test_the_stored_spec_keeps_all_but_the_credential(sqlite_uri: str, tmp_path: Path) -> None:
    spec_yaml = "name: unit-sweep\ntracking:\n  uri: http://coe:spec-secret-1@mlflow:5000\nbudget: {flops: [1e12]}\n"
    from coe_sweep.tracking import SweepTracker

    tracker = SweepTracker(sqlite_uri, "unit-sweep", spec_yaml, "spec0001", journal_dir=tmp_path / "j")
    parent = tracker.start()
    stored = Path(MlflowClient(sqlite_uri).download_artifacts(parent, SPEC_ARTIFACT, str(tmp_path))).read_text()
    assert stored == spec_yaml.replace("spec-secret-1", "***")
