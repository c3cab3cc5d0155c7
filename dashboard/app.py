"""The FastAPI app factory: `create_app(store)` wires the cache, the routers and the page.

The store is the tracking read side (`coe_sweep.tracking.TrackingStore`) or an already built
`SweepCache`; nothing here opens files or connections by itself, so tests hand in a store over a
temporary MLflow database. `app_from_env()` is the uvicorn factory for deployments
(`uvicorn --factory dashboard.app:app_from_env`). Read-only: every route is a GET. A tracking store
that is down answers 503 (refusing: 502) with a JSON `detail`; credentials never appear in answers or logs.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from coe_sweep.tracking import TrackingError
from coe_sweep.tracking.connection import install_redaction, redact_uri
from dashboard.cache import SweepCache, TrackingReader
from dashboard.deps import STORE_ERRORS, explain_validation_error, store_error
from dashboard.routers import (
    compare,
    docs,
    frontier,
    pages,
    pareto,
    scaling,
    sweeps,
    trials,
    trialview,
    viewpages,
    views,
)
from dashboard.settings import Settings, get_settings

log = logging.getLogger(__name__)

API_PREFIX = "/api"


def create_app(store: TrackingReader | SweepCache, settings: Settings | None = None) -> FastAPI:
    """The dashboard app over `store` (wrapped in a SweepCache with the settings' TTL if it is not one)."""
    settings = settings or get_settings()
    cache = store if isinstance(store, SweepCache) else SweepCache(store, ttl_s=settings.cache_ttl_s)
    app = FastAPI(
        title="coe-sweep dashboard",
        summary="IsoFLOP frontiers, scaling fits, Pareto sets and CoE vs MoE comparisons of coe-sweep sweeps",
        version="0.1.0",
        docs_url=None,  # served by routers.docs from local files (FastAPI's own loads from a CDN)
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, explain_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(TrackingError, store_error)
    app.state.cache = cache
    app.state.settings = settings
    for module in (sweeps, trialview, views, trials, frontier, scaling, pareto, compare):
        app.include_router(module.router, prefix=API_PREFIX, responses=STORE_ERRORS)
    app.include_router(pages.router)
    app.include_router(docs.router)
    app.include_router(viewpages.router)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: settings from the environment, store from the settings' tracking URI."""
    from coe_sweep.tracking import TrackingStore

    settings = get_settings()
    install_redaction(settings.tracking_uri)  # uvicorn has configured its handlers before calling the factory
    log.info("dashboard reading %s", redact_uri(settings.tracking_uri))
    return create_app(TrackingStore(settings.tracking_uri), settings)
