"""Dashboard settings: tracking URI, bind address, cache TTL, read from flags or the environment.

`get_settings()` is cached (functools.lru_cache) rather than an import-time singleton, so tests and
the CLI can build `Settings` explicitly and nothing is read from the environment at import.
Environment variables (all optional):
  COE_SWEEP_TRACKING_URI (falls back to MLFLOW_TRACKING_URI, then sqlite:///<cwd>/mlflow.db, or with
  `simulated=True` sqlite:///<cwd>/mlflow-sim.db, the default store of `launch --simulate`),
  COE_SWEEP_DASHBOARD_HOST (127.0.0.1), COE_SWEEP_DASHBOARD_PORT (8000),
  COE_SWEEP_CACHE_TTL_S (5), COE_SWEEP_PAGE_REFRESH_S (10).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coe_sweep.spec.load import default_tracking_uri

DEFAULT_HOST = "127.0.0.1"  # local-only unless the user asks for more
DEFAULT_PORT = 8000

_ENV = {
    "tracking_uri": "COE_SWEEP_TRACKING_URI",
    "host": "COE_SWEEP_DASHBOARD_HOST",
    "port": "COE_SWEEP_DASHBOARD_PORT",
    "cache_ttl_s": "COE_SWEEP_CACHE_TTL_S",
    "page_refresh_s": "COE_SWEEP_PAGE_REFRESH_S",
}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tracking_uri: str = Field(default_factory=default_tracking_uri, min_length=1)
    host: str = Field(default=DEFAULT_HOST, min_length=1)
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    cache_ttl_s: float = Field(default=5.0, ge=0.0, le=86_400.0,
                               description="seconds before a running sweep is re-read incrementally")
    page_refresh_s: float = Field(default=10.0, gt=0.0, le=3_600.0,
                                  description="how often the page polls the API while a sweep runs")


class SettingsError(ValueError):
    """A setting from the environment or a flag is invalid; the message names it."""


def settings_from(environ: Mapping[str, str], *, simulated: bool = False, **overrides: object) -> Settings:
    """Settings from an environment mapping, with explicit (flag) values taking precedence.

    Overrides that are None are ignored, so argparse defaults of None fall through to the env.
    simulated (`--simulated`): the tracking URI is the simulated default store (`launch --simulate` without
    tracking.uri), unless a tracking_uri override names one.
    """
    values: dict[str, object] = {}
    if "COE_SWEEP_TRACKING_URI" not in environ and environ.get("MLFLOW_TRACKING_URI"):
        values["tracking_uri"] = environ["MLFLOW_TRACKING_URI"]
    for field, var in _ENV.items():
        if environ.get(var):
            values[field] = environ[var]
    if simulated:
        values["tracking_uri"] = default_tracking_uri(simulated=True)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        source = f"--{field.replace('_', '-')}" if field in overrides else _ENV.get(field, field)
        raise SettingsError(f"{source}={err.get('input')!r} is invalid: {err['msg']}") from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment (tests call `get_settings.cache_clear()`)."""
    return settings_from(os.environ)
