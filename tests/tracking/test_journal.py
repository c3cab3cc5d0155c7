"""The durability layer: retry classification and backoff, the write-ahead journal, reachability probes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

from coe_sweep.tracking import RetryPolicy, TrackingUnavailable, check_reachable
from coe_sweep.tracking.connection import is_transient, redact_uri
from coe_sweep.tracking.journal import Journal, call_with_retries
from tests.tracking.conftest import free_port


def test_retry_backs_off_exponentially_then_gives_up() -> None:
    pauses: list[float] = []
    calls = []

    def down() -> None:
        calls.append(1)
        raise ConnectionRefusedError("connection refused")

    policy = RetryPolicy(attempts=5, initial_backoff_s=0.5, max_backoff_s=1.5)
    with pytest.raises(ConnectionRefusedError):
        call_with_retries(down, policy, "log", sleep=pauses.append)
    assert len(calls) == 5 and pauses == [0.5, 1.0, 1.5, 1.5]


def test_retry_recovers_and_permanent_errors_are_not_retried() -> None:
    answers = iter([OSError("reset"), MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE), "ok"])

    def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert call_with_retries(flaky, RetryPolicy(attempts=3), "log", sleep=lambda s: None) == "ok"
    refused = MlflowException("param changed", error_code=INVALID_PARAMETER_VALUE)
    assert not is_transient(refused) and not is_transient(ValueError("bug"))
    calls = []

    def bad() -> None:
        calls.append(1)
        raise refused

    with pytest.raises(MlflowException):
        call_with_retries(bad, RetryPolicy(attempts=4), "log", sleep=lambda s: None)
    assert calls == [1]


def test_retry_policy_validates() -> None:
    with pytest.raises(ValueError, match="attempts=0"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="max_backoff_s=-1"):
        RetryPolicy(max_backoff_s=-1)


def test_journal_replays_in_order_from_the_watermark(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    assert journal.entries() == [] and len(journal) == 0
    for i in range(4):
        journal.append({"op": "log_batch", "run": "r", "metrics": [["loss", float("nan") if i == 3 else i, 7, i]]})
    entries = journal.entries()
    assert [i for i, _ in entries] == [0, 1, 2, 3]
    assert entries[3][1]["metrics"][0][1] != entries[3][1]["metrics"][0][1]  # NaN survives the round trip
    journal.mark_applied(2)
    assert [op["metrics"][0][3] for _, op in Journal(tmp_path / "j").entries()] == [2, 3]  # survives reopen
    with open(journal.path, "a") as fh:  # a write torn by a crash
        fh.write('{"op": "log_ba')
    assert len(journal) == 2
    journal.clear()
    assert not journal.path.exists() and not journal.applied_path.exists()
    journal.reject({"op": "set_terminated", "run": "gone"}, RuntimeError("run deleted"))
    assert "run deleted" in journal.rejected_path.read_text()


def test_check_reachable_closed_port_fails_fast_naming_the_uri() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(TrackingUnavailable) as info:
        check_reachable(uri, timeout_s=2.0)
    assert time.monotonic() - start < 3.0
    assert uri in str(info.value) and "unreachable" in str(info.value)


def test_check_reachable_sqlite(tmp_path: Path) -> None:
    check_reachable(f"sqlite:///{tmp_path / 'new' / 'dir' / 'mlflow.db'}")  # directories are created
    assert (tmp_path / "new" / "dir").is_dir()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    uri = f"sqlite:///{blocker / 'mlflow.db'}"
    with pytest.raises(TrackingUnavailable, match="a-file"):
        check_reachable(uri)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TrackingUnavailable, match="not a usable sqlite database"):
        check_reachable(f"sqlite:///{garbage}")


def test_passwords_are_redacted() -> None:
    assert redact_uri("postgresql://mlflow:s3cret@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    uri = f"postgresql://u:hunter2@127.0.0.1:{free_port()}/x"
    with pytest.raises(TrackingUnavailable) as info:
        check_reachable(uri, timeout_s=3.0)
    assert "hunter2" not in str(info.value)
