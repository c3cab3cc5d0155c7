"""What a reader sees of flagged fits, thin sweeps and simulated sweeps, in headless Chromium.

One dashboard server (module scope) over the fitsweeps store; the page's DOM after its JavaScript ran is
asserted, and screenshots are saved under the test's tmp dir (looked at by hand when the page changes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape as html_escape
from pathlib import Path

import httpx
import pytest
from fitsweeps import ARMS, FLAGGED, THIN, fits_uri  # noqa: F401 - the session fixture
from served import dashboard as serve_dashboard
from test_browser import CHROMIUM, chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]


@pytest.fixture(scope="module")
def fits_server(fits_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    with serve_dashboard(fits_uri, tmp_path_factory.mktemp("fits-server") / "dashboard.log") as url:
        yield url


def _section(html: str, element_id: str) -> str:
    match = re.search(rf'<(ul|div|p|span)[^>]*id="{element_id}"[^>]*>.*?</\1>', html, re.S)
    assert match, f"{element_id} missing from the DOM"
    return match.group(0)


def _plot(html: str, plot_id: str) -> str:
    match = re.search(rf'<div id="{plot_id}"[^>]*>(.*?)(</section>|<table)', html, re.S)
    assert match, plot_id
    return match.group(0)


def test_flagged_fits_show_their_warning_dashed_and_without_a_star(fits_server: str, tmp_path: Path) -> None:
    api = httpx.get(f"{fits_server}/api/sweeps/{FLAGGED}/frontier", timeout=60).json()
    page = f"{fits_server}/sweeps/{FLAGGED}"
    html = chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", page).stdout
    flags = _section(html, "isoflop-flags")
    for budget in api["budgets"]:  # every level's flag next to the IsoFLOP chart, in the API's words
        for flag in budget["flags"]:
            assert html_escape(flag["text"], quote=False) in flags
    assert flags.count('class="blocking"') == sum(f["blocking"] for b in api["budgets"] for f in b["flags"])
    plot = _plot(html, "isoflop-plot")
    assert 'class="main-svg"' in plot and "(flagged)" in plot  # drawn, legend says flagged
    n_trials = sum(len(b["points"]) for b in api["budgets"])
    assert len(re.findall(r'class="point"', plot)) == n_trials  # the trials only: no vertex star
    assert "stroke-dasharray" in plot  # the flagged parabolas are dashed
    scaling = _section(html, "scaling-flags")
    assert "includes 0" in scaling and 'class="blocking"' in scaling
    assert "(flagged)" in _plot(html, "scaling-plot")  # the law is drawn as flagged
    assert 'id="sweep-simulated" class="badge simulated" hidden=""' in html  # not a simulated sweep
    shot = tmp_path / "flagged.png"
    chromium(tmp_path, "--virtual-time-budget=15000", f"--screenshot={shot}", "--window-size=1400,1500", page)
    assert shot.exists() and shot.stat().st_size > 30_000


def test_thin_sweep_says_what_is_missing_instead_of_empty_axes(fits_server: str, tmp_path: Path) -> None:
    page = f"{fits_server}/sweeps/{THIN}"
    html = chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", page).stdout
    assert "this level has 2 at 2 size(s)" in _section(html, "isoflop-flags")
    message = _section(html, "scaling-message")
    assert "needs a fitted IsoFLOP vertex at 2 or more levels; this sweep has 0 of 2" in message
    assert "{" not in message and "error:" not in html
    for plot_id in ("scaling-plot",):
        plot = _plot(html, plot_id)
        assert 'class="plot empty"' in plot and "main-svg" not in plot  # hidden, no empty axes
    shot = tmp_path / "thin.png"
    chromium(tmp_path, "--virtual-time-budget=15000", f"--screenshot={shot}", "--window-size=1400,1100", page)
    assert shot.exists()


def test_simulated_sweep_wears_its_badge_on_the_list_and_the_page(fits_server: str, tmp_path: Path) -> None:
    index = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", f"{fits_server}/").stdout
    rows = {name: row for row in re.findall(r"<tr>.*?</tr>", index, re.S)
            for name in (ARMS, FLAGGED) if f">{name}</a>" in row}
    assert "SIMULATED" in rows[ARMS] and "SIMULATED" not in rows[FLAGGED]
    page = f"{fits_server}/sweeps/{ARMS}"
    html = chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom", page).stdout
    badge = re.search(r'<span id="sweep-simulated"[^>]*>SIMULATED</span>', html)
    assert badge and "hidden" not in badge.group(0)
    plot = _plot(html, "isoflop-plot")
    assert len(re.findall(r'class="point"', plot)) > 48  # 48 trials and the unflagged levels' stars
    trials = re.search(r'<table id="trials-table".*?</table>', html, re.S).group(0)  # type: ignore[union-attr]
    api = httpx.get(f"{fits_server}/api/sweeps/{ARMS}/trials", params={"columns": "trial_id", "limit": "500"},
                    timeout=60).json()
    shown = set(re.findall(r"<td><a [^>]*>([0-9a-f]{8}-s\d+)</a></td>", trials))  # linked to the trial page
    assert shown and shown <= {r["trial_id"] for r in api["rows"]}  # the launch log's id (= MLflow run name)
    shot = tmp_path / "simulated.png"
    chromium(tmp_path, "--virtual-time-budget=20000", f"--screenshot={shot}", "--window-size=1400,1500", page)
    assert shot.exists()
