"""The HTML page (sweep list and one sweep) and its static assets, each a fixed file of this package.

No route takes a path from the request: the four assets are named here, the page templates are
two files beside them, and Plotly's JavaScript is the one `plotly.min.js` inside the installed
`plotly` package (no CDN, so the page works offline).
"""

from __future__ import annotations

import functools
import html
from pathlib import Path

import plotly
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from dashboard.cache import UnknownSweep
from dashboard.deps import CacheDep, SettingsDep, SweepKey

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
_ASSETS = {
    "dashboard.js": (STATIC_DIR / "dashboard.js", "text/javascript"),
    "compare.js": (STATIC_DIR / "compare.js", "text/javascript"),
    "dashboard.css": (STATIC_DIR / "dashboard.css", "text/css"),
    "plotly.min.js": (PLOTLY_JS, "text/javascript"),
}
_CACHE_HEADERS = {"Cache-Control": "public, max-age=3600"}


@functools.lru_cache(maxsize=4)
def _template(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def _page(name: str, **values: str) -> str:
    text = _template(name)
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return text


def _asset(name: str) -> FileResponse:
    path, media_type = _ASSETS[name]
    return FileResponse(path, media_type=media_type, headers=_CACHE_HEADERS)


@router.get("/static/dashboard.js")
def dashboard_js() -> FileResponse:
    return _asset("dashboard.js")


@router.get("/static/compare.js")
def compare_js() -> FileResponse:
    return _asset("compare.js")


@router.get("/static/dashboard.css")
def dashboard_css() -> FileResponse:
    return _asset("dashboard.css")


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return _asset("plotly.min.js")


@router.get("/", response_class=HTMLResponse)
def index(settings: SettingsDep) -> HTMLResponse:
    return HTMLResponse(_page("index.html", REFRESH_S=str(settings.page_refresh_s)))


@router.get("/sweeps/{sweep}", response_class=HTMLResponse)
def sweep_page(sweep: SweepKey, cache: CacheDep, settings: SettingsDep) -> HTMLResponse:
    try:
        summary = cache.resolve(sweep)
    except UnknownSweep as exc:
        body = _page("notfound.html", MESSAGE=str(exc))
        return HTMLResponse(body, status_code=404)
    return HTMLResponse(_page("sweep.html", SWEEP_ID=str(summary.id), SWEEP_NAME=str(summary.name),
                              REFRESH_S=str(settings.page_refresh_s)))
