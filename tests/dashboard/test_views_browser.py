"""The researcher views in headless Chromium, driven over the DevTools protocol (tests/dashboard/cdp.py):
one dashboard server and one browser for the module, over a copy of the session's store plus the variant
sweep of viewsgen (named arms, measured routing). Screenshots land in the module's tmp dir."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import viewsgen
from cdp import Browser, Page
from conftest import SWEEP
from served import dashboard

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                 "(apt-get install chromium; .ci/run installs it)")]


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's sweeps and the variant sweep in one store (the variant sweep's runs copied in by MLflow's
    own sqlite tables would be fragile: it is written afresh, once per module, ~15 s)."""
    root = tmp_path_factory.mktemp("views-store")
    shutil.copy(store_dir / "mlflow.db", root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    viewsgen.build(uri, str(root / "journal"))
    with dashboard(uri, root / "dashboard.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    root = tmp_path_factory.mktemp("chromium")
    chromium = Browser(CHROMIUM, root / "profile", root / "downloads")
    chromium.downloads = root / "downloads"  # type: ignore[attr-defined]
    yield chromium
    chromium.close()


def texts(page: Page, selector: str) -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map((e) => e.textContent)")


def drawn(page: Page, plot: str) -> None:
    page.wait_for(f"document.querySelector('#{plot} .main-svg') !== null")


def test_variant_sweep_shows_arm_names_in_table_and_legend(server: str, browser: Browser, shots: Path) -> None:
    page = browser.page(f"{server}/sweeps/{viewsgen.VARIANT_SWEEP}?tab=curves&color=arm")
    page.wait_for("document.querySelectorAll('#trials-table tbody tr').length === 12")
    page.wait_for("document.querySelectorAll('#view-plot .legendtext').length >= 3")
    headers = texts(page, "#trials-table th")
    assert headers[:3] == ["trial_id", "arm", "seed"] and {"router_mode", "iterations", "top_k"} <= set(headers)
    arms = set(page.evaluate("[...document.querySelectorAll('#trials-table tbody tr')].map((r) => r.cells[1].textContent)"))
    assert arms == set(viewsgen.ARMS)
    assert sorted(texts(page, "#view-plot .legendtext")) == sorted(f"arm={a}" for a in viewsgen.ARMS)
    body = page.evaluate("document.body.innerText")
    assert "variant=" not in body and "error:" not in body
    links = page.evaluate("[...document.querySelectorAll('#trials-table a')].map((a) => a.getAttribute('href'))")
    assert len(links) == 12 and all(h.startswith("/sweeps/") and "/trials/" in h for h in links)
    page.screenshot(shots / "variant-views.png", "#views")
    page.screenshot(shots / "variant-trials.png", "#trials-table")


def test_trial_page_draws_routing(server: str, browser: Browser, shots: Path) -> None:
    api = httpx.get(f"{server}/api/sweeps/{viewsgen.VARIANT_SWEEP}/trials?columns=trial_id,arm&limit=50", timeout=30).json()
    trial_id = next(r["trial_id"] for r in api["rows"] if r["arm"] == "coe_2_k")
    page = browser.page(f"{server}/sweeps/{viewsgen.VARIANT_SWEEP}/trials/{trial_id}")
    for plot in ("routing-entropy", "routing-overlap", "routing-load", "curves-plot", "memory-plot"):
        drawn(page, plot)
    assert page.evaluate("document.querySelectorAll('#routing-load .hm image, #routing-load .heatmaplayer image').length") >= 1
    assert page.evaluate("document.querySelector('#routing-load').data[0].z.length") == 4  # 2 layers x 2 iterations
    identity = page.evaluate("document.getElementById('identity-table').innerText")
    assert trial_id in identity and "coe_2_k" in identity
    assert page.evaluate("document.getElementById('mlflow-link').href").endswith("/runs/" + page.evaluate(
        "[...document.querySelectorAll('#identity-table td')].find((td, i, all) => all[i - 1] && all[i - 1].textContent === 'run id').textContent"))
    assert "model.router_mode" in page.evaluate("document.getElementById('config-table').innerText")
    page.screenshot(shots / "trial.png")
    running = httpx.get(f"{server}/api/sweeps/{SWEEP}/trials?status=running&columns=trial_id", timeout=30).json()["rows"][0]
    live = browser.page(f"{server}/sweeps/{SWEEP}/trials/{running['trial_id']}")
    assert live.wait_for("document.getElementById('trial-refresh').textContent").startswith("live: refreshing every")
    assert "simulated trial: no model ran" in live.evaluate("document.getElementById('routing-message').textContent")


def test_csv_export_click_downloads_the_filtered_rows(server: str, browser: Browser) -> None:
    downloads: Path = browser.downloads  # type: ignore[attr-defined]
    page = browser.page(f"{server}/sweeps/{SWEEP}?budget=3e12&status=ok")
    page.wait_for("document.querySelectorAll('#trials-table tbody tr').length === 14")
    page.wait_for("document.getElementById('export-csv').href.includes('budget=3e12')")
    page.evaluate("document.getElementById('export-csv').click()")
    target = downloads / f"{SWEEP}-trials.csv"
    deadline = time.monotonic() + 30
    while not target.exists():
        assert time.monotonic() < deadline, f"no download in {downloads}: {list(downloads.iterdir())}"
        time.sleep(0.1)
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 14 and {r["budget_label"] for r in rows} == {"3e12"} and {r["status"] for r in rows} == {"ok"}
    shown = page.evaluate("[...document.querySelectorAll('#trials-table tbody tr')].map((r) => r.cells[0].textContent)")
    assert [r["trial_id"] for r in rows] == shown  # same rows, same order as the table


def test_url_state_restores_the_view(server: str, browser: Browser, shots: Path) -> None:
    page = browser.page(f"{server}/sweeps/{viewsgen.VARIANT_SWEEP}?tab=routing&routing=overlap_next&budget=3e12&by=config"
                        "&family=coe&baseline=coe_2_k")
    page.wait_for("document.querySelectorAll('#view-plot .bars .point').length >= 2")
    page.wait_for("document.querySelector('#trials-table th') && document.querySelector('#trials-table th').textContent === 'config_hash'")
    assert page.evaluate("document.getElementById('tab-routing').classList.contains('active')")
    assert page.evaluate("[ 'view-routing', 'trials-budget', 'family'].map((id) => document.getElementById(id).value)") == [
        "overlap_next", "3e12", "coe"]
    assert page.evaluate("document.getElementById('trials-by').checked")
    assert page.wait_for("document.getElementById('compare-selection').textContent").startswith("every arm against coe_2_k")
    assert page.evaluate("document.getElementById('baseline').value") == "coe_2_k"
    assert sorted(texts(page, "#view-plot .legendtext")) == ["coe_2_k (2 trials)", "coe_shared_router (2 trials)"]
    assert len(page.evaluate("[...document.querySelectorAll('#trials-table tbody tr')]")) == 2  # two CoE configs at 3e12
    page.screenshot(shots / "url-state-routing.png", "#views")
    page.evaluate("document.getElementById('tab-history').click()")
    page.wait_for("new URLSearchParams(location.search).get('tab') === 'history'")
    assert "budget=3e12" in page.evaluate("location.search")  # the rest of the state kept


def test_two_sweeps_side_by_side(server: str, browser: Browser, shots: Path) -> None:
    page = browser.page(f"{server}/compare-sweeps?a={SWEEP}&b={viewsgen.VARIANT_SWEEP}")
    drawn(page, "best-plot")
    drawn(page, "frontier-plot")
    names = page.evaluate("document.querySelector('#best-plot').data.map((t) => t.name)")
    assert names == [f"A: {SWEEP}", f"B: {viewsgen.VARIANT_SWEEP}"]
    table = page.evaluate("document.getElementById('best-table').innerText")
    assert "1e12" in table and "3e12" in table and "1e13" in table
    page.screenshot(shots / "compare-sweeps.png")
