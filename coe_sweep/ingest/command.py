"""`coe-sweep import`: validate a table of runs, then write it as a sweep. Its arguments are declared in
coe_sweep/cli.py, which stays free of pandas so that `coe-sweep --help` is instant.

Exit status as for every command: 0 ok, 1 the store failed part-way (run it again: no run is written twice),
2 bad file or mapping (nothing written).
"""

from __future__ import annotations

import argparse
import sys

from coe_sweep import console

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def parse_import_options(args: argparse.Namespace) -> tuple[dict[str, str], list[float] | None]:
    """--map FIELD=COLUMN pairs and --levels; ValueError naming the flag."""
    mapping: dict[str, str] = {}
    for item in args.map or []:
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column:
            raise ValueError(f"--map {item!r} is invalid: expected FIELD=COLUMN, e.g. --map params='Model Size'")
        if name.strip() in mapping:
            raise ValueError(f"--map {name.strip()}: given twice; expected one column per field")
        mapping[name.strip()] = column
    if args.levels in (None, "auto"):
        return mapping, None
    try:
        levels = [float(v) for v in args.levels.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--levels={args.levels!r} is invalid: expected 'auto' or comma-separated FLOPs, "
                         "e.g. 1e18,3e18,1e19") from None
    return mapping, levels


def run_import(args: argparse.Namespace) -> int:
    """Validate a table of runs, then write it as a sweep. 2: bad file/mapping (nothing written); 1: store failed."""
    import os

    from coe_sweep.ingest import ImportRefused, read_table
    from coe_sweep.tracking import TrackingError
    from dashboard.settings import SettingsError, settings_from

    try:
        mapping, levels = parse_import_options(args)
        uri = settings_from(os.environ, tracking_uri=args.tracking_uri).tracking_uri
        plan = read_table(args.file, mapping, fmt=args.format, levels=levels, tol_log=args.tol_log)
        if args.dry_run:
            outcome = None
        else:
            from coe_sweep.ingest.write import write_import

            outcome = write_import(plan, uri, args.sweep)
    except (ImportRefused, ValueError, SettingsError) as exc:
        print(f"coe-sweep import: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrackingError as exc:
        print(f"coe-sweep import: {exc}; run the same command again to complete the import (no run is written "
              "twice)", file=sys.stderr)
        return EXIT_FAILED
    counts = {level.label: 0 for level in plan.levels} | {"off the levels": 0}
    for run in plan.runs:
        counts[run.budget_label or "off the levels"] = counts.get(run.budget_label or "off the levels", 0) + 1
    counts = {k: v for k, v in counts.items() if v}
    print(f"{len(plan.runs)} run(s) from {plan.source} ({plan.fmt}); FLOPs per token: {plan.flops_rule}; "
          f"levels (within ln-distance {plan.tol_log:g}): " + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    if outcome is None:
        print("dry run: nothing written")
        return EXIT_OK
    from coe_sweep.tracking.connection import redact_uri

    print(f"sweep {outcome.sweep} ({outcome.sweep_id}): {outcome.written} run(s) written, {outcome.already} already "
          f"there\nbrowse:  {console.program()} dashboard --tracking-uri {redact_uri(uri)}\n"
          f"         {console.program()} optimal {outcome.sweep} --flops {10 * max(r.flops for r in plan.runs):.3g}")
    if outcome.pending:
        print(f"warning: {outcome.pending} write(s) journaled while the store was unreachable; run the same command "
              "again to send them", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
