"""The page in a real browser: `coe-sweep dashboard` (uvicorn) on 127.0.0.1 and headless Chromium.

Asserts every chart rendered (Plotly's `js-plotly-plot` / `main-svg` in the DOM after the page's
JavaScript ran) and the tables filled, and saves a screenshot under the test's tmp dir.
Skips (with the reason) only when Debian's chromium is not installed at /usr/bin/chromium.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cdp import FLAGS as CHROMIUM_FLAGS
from conftest import ARMS_SWEEP, SWEEP
from served import dashboard

CHROMIUM = Path("/usr/bin/chromium")
PLOTS = ("isoflop-plot", "scaling-plot", "pareto-plot", "compare-plot", "multiplier-plot")

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                 "(apt-get install chromium; .ci/run installs it)")]


@pytest.fixture(scope="module")
def server(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dashboard(tracking_uri, tmp_path_factory.mktemp("dashboard") / "dashboard.log") as url:
        yield url


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


def test_sweep_page_renders_every_chart(server: str, tmp_path: Path) -> None:
    assert "127.0.0.1" in server  # bound locally by default
    page = f"{server}/sweeps/{SWEEP}?flops=1e14"
    dom = chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", page)
    html = dom.stdout
    assert "<html" in html, dom.stderr[-2000:]
    for plot in PLOTS:
        match = re.search(rf'<div id="{plot}"[^>]*>(.*?)(</section>|<h3>)', html, re.S)
        assert match, f"{plot} missing from the DOM"
        div = match.group(0)
        assert "js-plotly-plot" in div and 'class="main-svg"' in div, f"{plot} did not render"
    assert html.count("js-plotly-plot") >= len(PLOTS)
    assert "error:" not in html  # no endpoint failed inside the page
    compare_rows = re.search(r'<table id="compare-table".*?</table>', html, re.S).group(0)
    assert compare_rows.count("<tr>") >= 4  # header + 3 budgets
    methods = re.search(r'<table id="methods-table".*?</table>', html, re.S).group(0)
    for method in ("approach2", "approach3", "coe_law"):  # every method, each with its leave-future-out audit
        assert re.search(rf"<td>{method}</td>.*?held out 1e13", methods, re.S), method
    per_budget = re.search(r'<table id="method-budgets-table".*?</table>', html, re.S).group(0)
    assert per_budget.count("<tr>") == 4 and "coe_law N*" in per_budget
    assert "kept" in re.search(r'<table id="coe-law-table".*?</table>', html, re.S).group(0)
    prediction = re.search(r'<table id="prediction-table".*?</table>', html, re.S).group(0)
    assert prediction.count("10x beyond the largest trial") == 3 and "drop-one spread" in prediction
    trials = re.search(r'<table id="trials-table".*?</table>', html, re.S).group(0)
    assert trials.count("<tr>") >= 11 and "final_val_loss" in trials
    # the page worked offline: no external script or stylesheet
    assert not re.search(r'<script[^>]+src="https?://', html)

    shot = tmp_path / "sweep.png"
    result = chromium(tmp_path, "--virtual-time-budget=15000", f"--screenshot={shot}", "--window-size=1400,2400", page)
    assert shot.exists() and shot.stat().st_size > 50_000, result.stderr[-2000:]


def test_comparison_chart_renders_the_api_numbers(server: str, tmp_path: Path) -> None:
    """The arms section of a seeded sweep: error bars drawn, and the page's verdicts and multipliers are the API's."""
    api = httpx.get(f"{server}/api/sweeps/{ARMS_SWEEP}/compare", timeout=60).json()
    html = chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom", f"{server}/sweeps/{ARMS_SWEEP}").stdout
    plot = re.search(r'<div id="compare-plot".*?<h3>', html, re.S)
    assert plot and 'class="main-svg"' in plot.group(0), "the comparison chart did not render"
    assert "errorbar" in plot.group(0)  # mean and CI per arm per budget
    for arm in api["arms"]:
        assert f">{arm}<" in plot.group(0) or arm in plot.group(0)  # legend entries
    table = re.search(r'<table id="compare-table".*?</table>', html, re.S).group(0)
    texts = [a["diff"]["text"] for b in api["budgets"] for a in b["arms"] if a["diff"]]
    assert texts and all(text in table for text in texts)
    multipliers = re.search(r'<table id="multiplier-table".*?</table>', html, re.S).group(0)
    assert all(m["text"] in multipliers for m in api["multipliers"])
    assert "error:" not in html


def test_index_lists_sweeps(server: str, tmp_path: Path) -> None:
    html = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", f"{server}/").stdout
    assert 'href="/sweeps/' in html and SWEEP in html
