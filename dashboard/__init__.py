"""coe-sweep dashboard: a read-only FastAPI app (JSON API + one HTML page) over the tracking store."""

from __future__ import annotations

from dashboard.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
