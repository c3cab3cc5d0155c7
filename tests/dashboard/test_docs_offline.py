"""`/docs` works offline: the page and every asset it references come from the app itself (no CDN)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from coe_sweep.tracking import TrackingStore
from dashboard import create_app
from dashboard.settings import Settings


def test_docs_page_and_every_asset_it_references_are_served_locally(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with TestClient(create_app(TrackingStore(uri), Settings(tracking_uri=uri))) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        refs = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
        assert not [r for r in refs if re.match(r"(https?:)?//", r)], refs  # nothing from another host
        assert {"/static/swagger-ui/swagger-ui-bundle.js", "/static/swagger-ui/swagger-ui.css", "/openapi.json"} <= set(refs)
        for ref in refs:
            response = client.get(ref)
            assert response.status_code == 200 and len(response.content) > 500, ref
        assert "SwaggerUIBundle" in client.get("/static/swagger-ui/swagger-ui-bundle.js").text
        assert client.get("/openapi.json").json()["openapi"].startswith("3.")
