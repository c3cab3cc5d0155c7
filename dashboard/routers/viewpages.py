"""The pages of the researcher views: one trial (`/sweeps/{sweep}/trials/{trial}`), two sweeps side by side
(`/compare-sweeps?a=S1&b=S2`), and their scripts. Fixed files of this package, as in pages.py."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from dashboard.cache import UnknownSweep
from dashboard.deps import CacheDep, SettingsDep, SweepKey
from dashboard.routers.pages import STATIC_DIR, _page
from dashboard.routers.trialview import TrialKey

router = APIRouter(include_in_schema=False)

_SCRIPTS = {name: STATIC_DIR / name for name in ("views.js", "trial.js", "sweeps-compare.js")}
_CACHE_HEADERS = {"Cache-Control": "public, max-age=3600"}


def _script(name: str) -> FileResponse:
    return FileResponse(_SCRIPTS[name], media_type="text/javascript", headers=_CACHE_HEADERS)


@router.get("/static/views.css")
def views_css() -> FileResponse:
    return FileResponse(STATIC_DIR / "views.css", media_type="text/css", headers=_CACHE_HEADERS)


@router.get("/static/views.js")
def views_js() -> FileResponse:
    return _script("views.js")


@router.get("/static/trial.js")
def trial_js() -> FileResponse:
    return _script("trial.js")


@router.get("/static/sweeps-compare.js")
def sweeps_compare_js() -> FileResponse:
    return _script("sweeps-compare.js")


@router.get("/sweeps/{sweep}/trials/{trial}", response_class=HTMLResponse)
def trial_page(sweep: SweepKey, trial: TrialKey, cache: CacheDep, settings: SettingsDep) -> HTMLResponse:
    try:
        summary = cache.resolve(sweep)
    except UnknownSweep as exc:
        return HTMLResponse(_page("notfound.html", MESSAGE=str(exc)), status_code=404)
    return HTMLResponse(_page("trial.html", SWEEP_ID=str(summary.id), SWEEP_NAME=str(summary.name), TRIAL=trial,
                              REFRESH_S=str(settings.page_refresh_s)))


@router.get("/compare-sweeps", response_class=HTMLResponse)
def compare_sweeps_page(settings: SettingsDep) -> HTMLResponse:
    return HTMLResponse(_page("compare-sweeps.html", REFRESH_S=str(settings.page_refresh_s)))
