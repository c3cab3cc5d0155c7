"""`coe-sweep report`: build the figures and the one-page summary of a sweep under --out, progress on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from coe_sweep import console
from dashboard.report import build_report
from dashboard.terminal import BadInput


def run_report(args: argparse.Namespace) -> Callable[[str], None]:
    """The command's body for `coe_sweep.cli._dashboard_query`: given the tracking URI, writes the report and
    prints where; a missing sweep or an unwritable --out is BadInput (exit 2)."""

    def run(uri: str) -> None:
        from coe_sweep.tracking import SweepNotFound, TrackingStore

        def progress(line: str) -> None:
            print(f"report: {line} ...", file=sys.stderr, flush=True)

        try:
            report = build_report(TrackingStore(uri), args.sweep, Path(args.out), fmt=args.format, progress=progress)
        except SweepNotFound as exc:
            raise BadInput(str(exc)) from None
        except OSError as exc:
            raise BadInput(f"--out={args.out!r}: {exc.strerror or exc}; expected a writable directory") from None
        if report.answers.sweep.simulated:
            print(console.SIMULATED_LINE)
        flagged = sum(f.blocking for f in report.answers.flags)
        print(f"report of {report.answers.sweep.name}: {len(report.files)} file(s) in {args.out} "
              f"({flagged} flagged fit(s), {len(report.answers.flags) - flagged} warning(s))")
        for path in report.files:
            print(f"  {path}")

    return run
