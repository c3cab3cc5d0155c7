"""Settings from flags and environment; the cached getter; byte sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from coe_sweep.units import parse_bytes
from dashboard.settings import DEFAULT_HOST, SettingsError, get_settings, settings_from


def test_defaults_are_local_only() -> None:
    settings = settings_from({})
    assert settings.host == DEFAULT_HOST == "127.0.0.1" and settings.port == 8000
    assert settings.tracking_uri == f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def test_environment_then_flags() -> None:
    env = {"COE_SWEEP_TRACKING_URI": "http://mlflow:5000", "COE_SWEEP_DASHBOARD_PORT": "9000",
           "COE_SWEEP_CACHE_TTL_S": "2.5", "MLFLOW_TRACKING_URI": "http://ignored:1"}
    settings = settings_from(env)
    assert (settings.tracking_uri, settings.port, settings.cache_ttl_s) == ("http://mlflow:5000", 9000, 2.5)
    assert settings_from({"MLFLOW_TRACKING_URI": "http://fallback:5000"}).tracking_uri == "http://fallback:5000"
    flagged = settings_from(env, port=9100, host="0.0.0.0", tracking_uri=None)
    assert (flagged.port, flagged.host, flagged.tracking_uri) == (9100, "0.0.0.0", "http://mlflow:5000")


@pytest.mark.parametrize("env,flags,needle", [
    ({"COE_SWEEP_DASHBOARD_PORT": "http"}, {}, "COE_SWEEP_DASHBOARD_PORT='http'"),
    ({}, {"port": 70000}, "--port=70000"),
    ({"COE_SWEEP_CACHE_TTL_S": "-1"}, {}, "COE_SWEEP_CACHE_TTL_S='-1'"),
])
def test_bad_settings_name_the_source(env: dict[str, str], flags: dict[str, object], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle.replace("(", r"\(")):
        settings_from(env, **flags)


def test_get_settings_is_cached_and_clearable(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("COE_SWEEP_DASHBOARD_PORT", "8123")
    assert get_settings() is get_settings() and get_settings().port == 8123
    monkeypatch.setenv("COE_SWEEP_DASHBOARD_PORT", "8124")
    assert get_settings().port == 8123  # read once
    get_settings.cache_clear()
    assert get_settings().port == 8124
    get_settings.cache_clear()


@pytest.mark.parametrize("text,expected", [("2GB", 2e9), ("1GiB", 2**30), ("512MiB", 2**29), ("3e9", 3e9),
                                           ("1.5 G", 1.5e9), ("100", 100.0)])
def test_parse_bytes(text: str, expected: float) -> None:
    assert parse_bytes(text, "max_memory") == expected


@pytest.mark.parametrize("text", ["lots", "0", "-1GB", "1XB", "", "1e999"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="max_memory=.* is invalid: expected (a finite size: )?a positive size"):
        parse_bytes(text, "max_memory")


def test_simulated_opens_the_simulated_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"MLFLOW_TRACKING_URI": "sqlite:///env.db"}
    assert settings_from(env, simulated=True).tracking_uri == f"sqlite:///{tmp_path / 'mlflow-sim.db'}"
    assert settings_from({}, simulated=False).tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings_from(env, simulated=True, tracking_uri="sqlite:///flag.db").tracking_uri == "sqlite:///flag.db"
