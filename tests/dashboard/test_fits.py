"""Honest fit displays through the API, the CLI and `coe-sweep report`, on a real store (fitsweeps.py):
flags where fits are wrong, clear text where there is nothing to fit, Pareto per budget, simulated marked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from fitsweeps import ARMS, FLAGGED, THIN, fits_uri  # noqa: F401 - the session fixture

from coe_sweep.analysis.columns import ok_rows
from coe_sweep.analysis.pareto import first_front_mask
from coe_sweep.cli import main
from coe_sweep.tracking import TrackingStore
from dashboard import create_app
from dashboard.settings import Settings


@pytest.fixture(scope="module")
def fits_client(fits_uri: str) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(create_app(TrackingStore(fits_uri), Settings(tracking_uri=fits_uri, cache_ttl_s=60.0))) as client:
        yield client


def test_flagged_levels_carry_their_flags_and_no_vertex_to_star(fits_client: TestClient) -> None:
    body = fits_client.get(f"/api/sweeps/{FLAGGED}/frontier").json()
    assert len(body["budgets"]) == 3
    for budget in body["budgets"]:
        assert budget["flagged"]
        codes = {f["code"] for f in budget["flags"]}
        assert "vertex_outside_range" in codes, budget["flags"]
        flag = next(f for f in budget["flags"] if f["code"] == "vertex_outside_range")
        assert flag["blocking"] and flag["level"] == budget["budget_label"] and "outside the sampled range" in flag["text"]
    scaling = fits_client.get(f"/api/sweeps/{FLAGGED}/scaling").json()
    assert scaling["flagged"] and all(p["flagged"] and p["reasons"] for p in scaling["points"])
    exponent = [f for f in scaling["flags"] if f["code"] == "exponent_includes_zero"]
    assert exponent and exponent[0]["fit"] == "approach2" and "includes 0" in exponent[0]["text"]


def test_optimal_flags_reach_the_api_and_the_cli(fits_client: TestClient, fits_uri: str,  # noqa: F811
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    api = fits_client.get(f"/api/sweeps/{FLAGGED}/optimal", params={"flops": "1e15"}).json()
    assert api["prediction"]["flagged"]
    texts = [f["text"] for f in api["flags"]]
    assert any("includes 0" in t for t in texts)
    levels = {f["level"] for f in api["flags"] if f["code"] == "vertex_outside_range"}
    assert levels == {"1e12", "3e12", "1e13"}  # the levels the laws rest on, flagged with the prediction
    assert main(["optimal", FLAGGED, "--flops", "1e15", "--tracking-uri", fits_uri]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "FLAGGED (approach2, exponent_includes_zero)" in out
    assert all(" ".join(t.split()) in out for t in texts)
    assert "SIMULATED" not in out  # a trained (not simulated) sweep says nothing of the kind


def test_thin_sweep_says_what_is_missing_never_a_dict(fits_client: TestClient) -> None:
    frontier = fits_client.get(f"/api/sweeps/{THIN}/frontier").json()
    assert "needs at least 4 finished trials at 3+ sizes" in frontier["message"]
    assert "this level has 2 at 2 size(s)" in frontier["message"]
    scaling = fits_client.get(f"/api/sweeps/{THIN}/scaling").json()
    assert scaling["points"] == [] and "{" not in scaling["message"]
    assert "needs a fitted IsoFLOP vertex at 2 or more levels; this sweep has 0 of 2" in scaling["message"]
    optimal = fits_client.get(f"/api/sweeps/{THIN}/optimal", params={"flops": "1e14"}).json()
    assert optimal["prediction"] is None and "{" not in optimal["message"]


def _front_by_brute_force(values: np.ndarray) -> set[int]:
    return {i for i in range(len(values))
            if not any((values[j] <= values[i]).all() and (values[j] < values[i]).any() for j in range(len(values)))}


def test_pareto_is_per_budget_by_default_and_pooled_on_request(fits_client: TestClient, fits_uri: str) -> None:  # noqa: F811
    frame = ok_rows(TrackingStore(fits_uri).trials_frame(ARMS)).reset_index(drop=True)
    url = f"/api/sweeps/{ARMS}/pareto"
    per = fits_client.get(url, params={"include_dominated": "true"}).json()
    pooled = fits_client.get(url, params={"include_dominated": "true", "pooled": "true"}).json()
    assert not per["pooled"] and pooled["pooled"]
    expected: set[str] = set()
    for _, group in frame.groupby("budget_label"):
        values = group[["final_val_loss", "peak_memory_bytes"]].to_numpy()
        expected |= set(group["run_id"].iloc[sorted(_front_by_brute_force(values))])
    assert {p["run_id"] for p in per["front"]} == expected
    assert {p["budget_label"] for p in per["front"]} == {"1e12", "3e12", "1e13"}  # every level has its front
    mask = first_front_mask(frame[["final_val_loss", "peak_memory_bytes"]].to_numpy(), ["min", "min"])
    assert {p["run_id"] for p in pooled["front"]} == set(frame["run_id"][mask])
    assert len(per["front"]) + len(per["dominated"]) == len(pooled["front"]) + len(pooled["dominated"]) == len(frame)


def test_simulated_sweep_is_marked_in_the_api_and_the_cli(fits_client: TestClient, fits_uri: str,  # noqa: F811
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    sweeps = {s["name"]: s for s in fits_client.get("/api/sweeps").json()["sweeps"]}
    assert sweeps[ARMS]["simulated"] and not sweeps[FLAGGED]["simulated"]
    assert fits_client.get(f"/api/sweeps/{ARMS}").json()["simulated"]
    for argv in (["pareto", ARMS], ["compare", ARMS], ["optimal", ARMS, "--flops", "1e14"], ["status", ARMS]):
        assert main([*argv, "--tracking-uri", fits_uri]) == 0, argv
        assert "SIMULATED: losses from the simulated law" in capsys.readouterr().out, argv


def test_report_of_a_sweep_with_arms(fits_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    out = tmp_path / "report"
    assert main(["report", ARMS, "--out", str(out), "--tracking-uri", fits_uri]) == 0
    captured = capsys.readouterr()
    assert "report: fitting IsoFLOP profiles" in captured.err and "SIMULATED" in captured.out
    for name in ("isoflop", "optimum", "pareto", "arms"):
        for suffix in (".png", ".svg"):
            path = out / f"{name}{suffix}"
            assert path.exists() and path.stat().st_size > 10_000, path
    assert (out / "isoflop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    api = TestClient(create_app(TrackingStore(fits_uri), Settings(tracking_uri=fits_uri))).get(
        f"/api/sweeps/{ARMS}/compare").json()
    verdicts = [a["diff"]["text"] for b in api["budgets"] for a in b["arms"] if a["diff"]]
    assert verdicts and all(v in md for v in verdicts)  # the API's verdicts, word for word
    assert "SIMULATED" in md and "<strong>SIMULATED" in html and '<img src="arms.png"' in html
    assert "![optimum.png](optimum.png)" in md and "## Flags" in md


def test_report_of_a_thin_sweep_says_what_is_missing(fits_uri: str, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "thin"
    assert main(["report", THIN, "--out", str(out), "--format", "md", "--tracking-uri", fits_uri]) == 0
    md = (out / "report.md").read_text()
    assert "needs at least 4 finished trials at 3+ sizes to fit a parabola; this level has 2 at 2 size(s)" in md
    assert "an arm comparison needs 2 or more" in md
    assert not (out / "optimum.png").exists() and not (out / "report.html").exists()


def test_report_bad_input_exits_2(fits_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["report", "no-such-sweep", "--out", str(tmp_path), "--tracking-uri", fits_uri]) == 2
    assert "no-such-sweep" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", THIN, "--out", str(blocker / "sub"), "--tracking-uri", fits_uri]) == 2
    assert "--out=" in capsys.readouterr().err


def test_pareto_cli_pooled_equals_the_api(fits_client: TestClient, fits_uri: str,  # noqa: F811
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import json

    for flags, params in (([], {}), (["--pooled"], {"pooled": "true"})):
        assert main(["pareto", ARMS, "--json", "--tracking-uri", fits_uri, *flags]) == 0
        cli = json.loads(capsys.readouterr().out)
        api = fits_client.get(f"/api/sweeps/{ARMS}/pareto", params=params).json()
        assert [p["run_id"] for p in cli["front"]] == [p["run_id"] for p in api["front"]] and cli["pooled"] == api["pooled"]
