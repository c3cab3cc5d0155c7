"""`/docs`: the Swagger UI of the JSON API, served from local files so that it works offline.

FastAPI's default `/docs` page loads Swagger UI's script and stylesheet from a CDN, which leaves it blank
with no network. Here the page is FastAPI's own (`get_swagger_ui_html`) pointed at the copies that the
`swagger-ui-bundle-v2` package installs; as for the dashboard's assets, no route takes a path from the request.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

router = APIRouter(include_in_schema=False)

PREFIX = "/static/swagger-ui/"
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}
_CACHE_HEADERS = {"Cache-Control": "public, max-age=86400"}


def _asset(name: str) -> FileResponse:
    return FileResponse(str(swagger_ui_path / name), media_type=_ASSETS[name], headers=_CACHE_HEADERS)


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=request.app.openapi_url, title=request.app.title + " - API",
                               swagger_js_url=PREFIX + "swagger-ui-bundle.js", swagger_css_url=PREFIX + "swagger-ui.css",
                               swagger_favicon_url=PREFIX + "favicon-32x32.png")


@router.get(PREFIX + "swagger-ui-bundle.js")
def swagger_js() -> FileResponse:
    return _asset("swagger-ui-bundle.js")


@router.get(PREFIX + "swagger-ui.css")
def swagger_css() -> FileResponse:
    return _asset("swagger-ui.css")


@router.get(PREFIX + "favicon-32x32.png")
def swagger_favicon() -> FileResponse:
    return _asset("favicon-32x32.png")
