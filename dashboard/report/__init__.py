"""`coe-sweep report SWEEP --out DIR`: static figures (PNG + SVG) and a one-page summary (Markdown, HTML) of a
sweep's answers, for a paper or a lab notebook.

Everything comes from the functions the API and the page use (`collect` calls dashboard.answers); this package
only draws (`figures`) and writes (`summary`). A thin sweep gives a report that says what is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.report import figures, summary
from dashboard.report.collect import Progress, SweepAnswers, collect

log = logging.getLogger(__name__)

FORMATS = ("md", "html", "both")


@dataclass
class Report:
    answers: SweepAnswers
    files: list[Path] = field(default_factory=list)


def build_report(store: Any, sweep: str, out_dir: Path, *, fmt: str = "both",
                 progress: Progress = lambda line: None) -> Report:
    """Compute a sweep's answers and write the figures and the summary under out_dir (created if missing)."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is invalid: expected one of {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = collect(store, sweep, progress)
    progress("drawing the figures (PNG and SVG)")
    drawn = figures.draw_all(result, out_dir)
    report = Report(result, [p for paths in drawn.values() for p in paths])
    items = summary.blocks(result, drawn)
    if fmt in ("md", "both"):
        path = out_dir / "report.md"
        path.write_text(summary.markdown(items), encoding="utf-8")
        report.files.append(path)
    if fmt in ("html", "both"):
        path = out_dir / "report.html"
        path.write_text(summary.to_html(items, f"Sweep report: {result.sweep.name}"), encoding="utf-8")
        report.files.append(path)
    return report
