"""The `coe-sweep` command line: parse, validate, call one library function, render.

Each subcommand is one `_cmd_*` function. Heavy imports (torch, ray, mlflow) happen inside the
function that needs them, so `coe-sweep --help` and spec validation stay fast.
Exit status: 0 ok, 1 the work ran but something failed, 2 bad input (nothing was started),
130 `launch` interrupted (Ctrl-C or SIGTERM; re-running it continues the sweep).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from coe_sweep import console

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _cmd_train(args: argparse.Namespace) -> int:
    from runners.command import run_train_command  # flags/YAML -> RunSpec -> plan -> train -> result

    return run_train_command(args)


def _cmd_plan(args: argparse.Namespace) -> int:
    """Candidate table per budget, counts, total FLOPs and wall time; runs nothing. 2: bad spec."""
    import json

    from coe_sweep.console import make_console
    from coe_sweep.search.feasibility import load_feasible_spec
    from coe_sweep.spec import SpecError

    try:
        spec = load_feasible_spec(args.spec, args.set)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    from coe_sweep.search.plan_table import render_plan
    from coe_sweep.search.sweep_plan import CPU_TRAIN_FLOPS_PER_S_PER_CPU, build_plan, calibrate_cpu_rate

    cpu_rate = calibrate_cpu_rate() if args.calibrate else CPU_TRAIN_FLOPS_PER_S_PER_CPU
    gpu_memory = None
    if spec.cluster.gpus_per_trial == "auto" and spec.cluster.gpu_memory is None:
        from runners.device import gpu_memory_bytes

        gpu_memory = gpu_memory_bytes()
    plan = build_plan(spec, cpu_rate=cpu_rate, gpu_memory_bytes=gpu_memory)
    if args.format == "json":
        sys.stdout.write(json.dumps(plan, indent=2, default=str) + "\n")
    else:
        render_plan(plan, make_console(width=None if sys.stdout.isatty() else 200), limit=args.limit)
    return EXIT_OK


def _cmd_launch(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep; summary and browse commands at the end. 2: bad input, nothing started."""
    from coe_sweep.console import make_console
    from coe_sweep.search.feasibility import load_feasible_spec
    from coe_sweep.spec import SpecError

    err = make_console(stderr=True)
    overrides = list(args.set or [])
    if args.tracking_uri:
        overrides.append(f"tracking.uri={args.tracking_uri}")
    if args.address:
        overrides.append(f"cluster.address={args.address}")
    try:
        spec = load_feasible_spec(args.spec, overrides, simulated=args.simulate)
    except SpecError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    if args.max_failures is not None and args.max_failures < 0:
        err.print(f"error: --max-failures: found {args.max_failures}; expected an integer >= 0", soft_wrap=True)
        return EXIT_BAD_INPUT
    from coe_sweep.sweep.driver import SweepExists, launch
    from coe_sweep.sweep.outcome import render_summary
    from coe_sweep.sweep.runtime import ResourceError
    from coe_sweep.sweep.store import StorageError, SweepLocked
    from coe_sweep.tracking.connection import install_redaction, redact, redact_uri
    from coe_sweep.tracking.records import TrackingError

    install_redaction(spec.tracking.uri or "")

    try:
        outcome = launch(spec, simulate=args.simulate, resume=args.resume, max_failures=args.max_failures,
                         progress=not args.no_progress, simulate_trial_s=args.simulate_trial_s)
    except (StorageError, SweepLocked, SweepExists, ResourceError, TrackingError) as exc:
        err.print(f"error: {redact(str(exc), spec.tracking.uri or '')}", highlight=False, markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err.print(f"interrupted: finished trials are kept and running ones are marked interrupted; run "
                  f"`coe-sweep launch {args.spec}` again to continue the sweep (nothing is trained twice)",
                  highlight=False, markup=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    out = make_console()
    for table in render_summary(outcome):
        out.print(table)
    if outcome.stopped_reason:
        interrupted = sum(len(b.interrupted) for b in outcome.budgets.values())
        out.print(f"sweep {outcome.stopped_reason}" + (f"; {interrupted} running trial(s) were interrupted and "
                  "run again by the relaunch" if interrupted else ""), highlight=False, markup=False, soft_wrap=True)
    if outcome.busy_slot_s > 0:
        out.print(f"sweep efficiency {outcome.efficiency:.2f}: {outcome.busy_slot_s:.0f} busy slot-seconds / "
                  f"({outcome.slots} slot(s) x {outcome.wall_s:.0f} s, start-up included); idle slot time "
                  f"{outcome.idle_slot_s:.0f} s; {outcome.trials_efficiency:.2f} from the first trial's start to "
                  f"the last one's end ({outcome.trials_span_s:.0f} s)", highlight=False, markup=False,
                  soft_wrap=True)
    uri = redact_uri(outcome.tracking_uri)
    if outcome.tracking_pending:
        err.print(f"warning: {outcome.tracking_pending} MLflow write(s) could not reach {uri}; "
                  f"they are kept in {outcome.tracking_journal} and every result in {outcome.storage_dir}/results. "
                  f"Nothing is lost: run `coe-sweep launch {args.spec}` again once the tracking server is back "
                  f"to send them (no trial is retrained).", highlight=False, markup=False, soft_wrap=True)
    if outcome.simulated:
        out.print(console.SIMULATED_LINE, highlight=False, markup=False, soft_wrap=True)
    out.print(f"results: {outcome.storage_dir}\nbrowse:  {console.program()} dashboard --tracking-uri {uri}\n"
              f"         {console.program('mlflow')} ui --backend-store-uri {uri}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_FAILED if outcome.exit_code else EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    """Progress of a sweep (running here or elsewhere, or finished) from MLflow, as `launch` shows it."""
    from pathlib import Path

    from coe_sweep.console import make_console
    from coe_sweep.sweep.progress import render_progress, status_progress
    from coe_sweep.tracking import TrackingStore
    from coe_sweep.tracking.connection import install_redaction, redact, redact_uri
    from coe_sweep.tracking.records import NotFound, TrackingError

    out, err = make_console(), make_console(stderr=True)
    spec, name = None, args.sweep
    if name and (name.endswith((".yaml", ".yml")) or Path(name).is_file()):
        from coe_sweep.search.feasibility import load_feasible_spec
        from coe_sweep.spec import SpecError

        try:
            spec = load_feasible_spec(name, simulated=args.simulated)
        except SpecError as exc:
            err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
            return EXIT_BAD_INPUT
        name = spec.name
    from coe_sweep.spec.load import default_tracking_uri

    uri = args.tracking_uri or (spec.tracking.uri if spec else None) or default_tracking_uri(args.simulated)
    install_redaction(uri)
    try:
        store = TrackingStore(uri)
        sweeps = [s for s in store.list_sweeps() if name in (None, s.id, s.name)]
        if spec is not None:
            sweeps = [s for s in sweeps if s.spec_hash in (None, spec.spec_hash())] or sweeps
        if not sweeps:
            err.print(f"error: SWEEP: found {name!r}; expected a sweep name or id in {redact_uri(uri)} "
                      f"(known: {', '.join(sorted({s.name for s in store.list_sweeps()})) or 'none'})",
                      highlight=False, markup=False, soft_wrap=True)
            return EXIT_BAD_INPUT
        sweep = max(sweeps, key=lambda s: s.start_time or 0)
        frame = store.trials_frame(sweep.id)
    except (TrackingError, NotFound) as exc:
        err.print(f"error: {redact(str(exc), uri)}", highlight=False, markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    progress = status_progress(store, sweep, frame, spec)
    if sweep.simulated:
        out.print(console.SIMULATED_LINE, highlight=False, markup=False, soft_wrap=True)
    out.print(render_progress(progress, title=f"sweep {sweep.name} [{sweep.status}] ({sweep.id})"))
    return EXIT_OK


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import os

    from dashboard.settings import SettingsError, settings_from
    from dashboard.terminal import serve

    try:
        settings = settings_from(os.environ, tracking_uri=args.tracking_uri, host=args.host, port=args.port,
                                 cache_ttl_s=args.cache_ttl, simulated=args.simulated)
    except SettingsError as exc:
        from coe_sweep.tracking.connection import redact

        print(f"coe-sweep dashboard: {redact(str(exc), args.tracking_uri or '')}", file=sys.stderr)
        return EXIT_BAD_INPUT
    serve(settings)
    return EXIT_OK


def _dashboard_query(args: argparse.Namespace, run: Callable[[str], object]) -> int:
    """Shared by `pareto`, `optimal`, `compare` and `report`: tracking URI from flag/env, BadInput -> 2, store down -> 1."""
    import os

    from coe_sweep.tracking import TrackingError
    from coe_sweep.tracking.connection import install_redaction, redact
    from dashboard.settings import SettingsError, settings_from
    from dashboard.terminal import BadInput

    uri = args.tracking_uri or ""
    try:
        uri = settings_from(os.environ, tracking_uri=args.tracking_uri, simulated=args.simulated).tracking_uri
        install_redaction(uri)
        run(uri)
    except (BadInput, SettingsError) as exc:
        print(f"coe-sweep {args.command}: {redact(str(exc), uri)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrackingError as exc:
        print(f"coe-sweep {args.command}: {redact(str(exc), uri)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _cmd_pareto(args: argparse.Namespace) -> int:
    from dashboard.terminal import pareto

    return _dashboard_query(args, lambda uri: pareto(uri, args.sweep, args.objectives, as_json=args.json,
                                                     budget=args.budget, family=args.family, pooled=args.pooled))


def _cmd_optimal(args: argparse.Namespace) -> int:
    from dashboard.terminal import optimal

    return _dashboard_query(args, lambda uri: optimal(uri, args.sweep, args.flops, max_memory=args.max_memory,
                                                      x=args.x, family=args.family, as_json=args.json))


def _cmd_compare(args: argparse.Namespace) -> int:
    from dashboard.terminal import compare

    return _dashboard_query(args, lambda uri: compare(uri, args.sweep, baseline=args.baseline, as_json=args.json))


def _cmd_report(args: argparse.Namespace) -> int:
    from dashboard.report.command import run_report

    return _dashboard_query(args, run_report(args))


def _args_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the table: .csv, .parquet or .jsonl, one run per row")
    p.add_argument("--sweep", required=True, help="name of the sweep to create in MLflow")
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                   help="column of a field (repeatable): params, loss, tokens or flops (required); params_total, "
                        "flops_per_token, iterations, top_k, n_experts, n_layers, d_model, d_expert, dense, seed, arm, "
                        "budget (optional). A column named like a field maps itself")
    p.add_argument("--format", choices=("csv", "parquet", "jsonl"), default=None, help="default: from the extension")
    p.add_argument("--levels", default=None, metavar="FLOPS,...|auto",
                   help="budget levels in FLOPs (each run goes to the nearest within --tol-log); default auto: "
                        "found from the runs' FLOPs; a mapped budget column wins")
    p.add_argument("--tol-log", type=float, default=0.2, metavar="T",
                   help="a run belongs to a level when |ln(FLOPs / level)| <= T (default 0.2: within x1.22)")
    p.add_argument("--dry-run", action="store_true", help="validate and summarise; write nothing")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI (default as for `dashboard`)")


def _cmd_import(args: argparse.Namespace) -> int:
    from coe_sweep.ingest.command import run_import

    return run_import(args)


def _add_simulated(p: argparse.ArgumentParser) -> None:
    p.add_argument("--simulated", action="store_true",
                   help="open the simulated default store (sqlite:///<cwd>/mlflow-sim.db, where `launch --simulate` "
                        "writes when the spec names no tracking.uri)")


def _args_train(p: argparse.ArgumentParser) -> None:
    from runners.command import add_train_arguments  # torch-free

    add_train_arguments(p)


def _args_plan(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep spec YAML (search_spaces/*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a spec field, validated like the file (repeatable)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="table (rich) or json")
    p.add_argument("--limit", type=int, default=40, metavar="N",
                   help="table: at most N candidate rows per budget (feasible first; 0: all)")
    p.add_argument("--calibrate", action="store_true",
                   help="time a real training step here to set the CPU throughput of the wall-time estimate")


def _args_launch(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep spec YAML (search_spaces/*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a spec field, validated like the file (repeatable)")
    p.add_argument("--simulate", action="store_true",
                   help="no training: losses from the documented law in runners/simulated.py")
    p.add_argument("--simulate-trial-s", type=float, default=0.0, metavar="S",
                   help="with --simulate: wall seconds each simulated trial takes (demos; default 0)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue a sweep that already has finished trials (default); --no-resume refuses")
    p.add_argument("--max-failures", type=int, default=None, metavar="N",
                   help="stop the sweep after N failed trials (default: search.max_failures, else never)")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI (overrides tracking.uri)")
    p.add_argument("--address", default=None, help="Ray cluster address (overrides cluster.address)")
    p.add_argument("--no-progress", action="store_true", help="no live progress table")


def _args_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", nargs="?", default=None,
                   help="sweep name, parent run id, or spec YAML (default: the latest sweep)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow URI (default: the spec's, else sqlite:///<cwd>/mlflow.db)")
    _add_simulated(p)


def _args_dashboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow URI (default: $COE_SWEEP_TRACKING_URI, $MLFLOW_TRACKING_URI, sqlite:///<cwd>/mlflow.db)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1, $COE_SWEEP_DASHBOARD_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000, $COE_SWEEP_DASHBOARD_PORT)")
    p.add_argument("--cache-ttl", type=float, default=None,
                   help="seconds between re-reads of a running sweep (default 5, $COE_SWEEP_CACHE_TTL_S)")
    _add_simulated(p)


def _args_pareto(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="sweep name or parent run id")
    p.add_argument("--objectives", default="val_loss,peak_memory",
                   help="2-3 comma-separated NAME[:min|max] (val_loss, peak_memory, params_total, train_flops, "
                        "tokens_per_s, or a column name); default val_loss,peak_memory")
    p.add_argument("--budget", default=None, help="only this budget (label or FLOPs)")
    p.add_argument("--family", choices=("moe", "coe", "dense"), default=None)
    p.add_argument("--pooled", action="store_true", help="one front over every budget (default: one per budget level)")
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI (default as for `dashboard`)")
    _add_simulated(p)


def _args_optimal(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="sweep name or parent run id")
    p.add_argument("--flops", type=float, required=True, help="training budget in FLOPs, e.g. 1e15")
    p.add_argument("--max-memory", default=None, help="memory cap for the nearest config: bytes or 2GB, 512MiB")
    p.add_argument("--x", choices=("params_active", "params_total", "tokens", "iterations"), default="params_active")
    p.add_argument("--family", choices=("moe", "coe", "dense"), default=None)
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of tables")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI (default as for `dashboard`)")
    _add_simulated(p)


def _args_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="sweep name or parent run id")
    p.add_argument("--baseline", default=None, metavar="ARM",
                   help="arm to compare against (default: the spec's analysis.baseline, else moe, else the first arm)")
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of tables")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI (default as for `dashboard`)")
    _add_simulated(p)


def _args_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="sweep name or parent run id")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the figures and report.md/report.html")
    p.add_argument("--format", choices=("md", "html", "both"), default="both", help="summary format (default both)")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI (default as for `dashboard`)")
    _add_simulated(p)


# (name, help, arguments, command): one row per subcommand, in `coe-sweep --help` order
COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = [
    ("train", "train one configuration (flags or a YAML file)", _args_train, _cmd_train),
    ("plan", "print the candidate table of a sweep spec; runs nothing", _args_plan, _cmd_plan),
    ("launch", "run (or resume) a sweep", _args_launch, _cmd_launch),
    ("status", "progress of a sweep, read from MLflow", _args_status, _cmd_status),
    ("dashboard", "serve the FastAPI dashboard", _args_dashboard, _cmd_dashboard),
    ("pareto", "Pareto-optimal trials of a sweep", _args_pareto, _cmd_pareto),
    ("optimal", "predicted compute-optimal config at a budget", _args_optimal, _cmd_optimal),
    ("compare", "every arm against a baseline arm, with intervals over seeds", _args_compare, _cmd_compare),
    ("report", "figures (PNG, SVG) and a one-page summary (Markdown, HTML) of a sweep", _args_report, _cmd_report),
    ("import", "write a table of runs coe-sweep did not train (csv, parquet, jsonl) as a sweep", _args_import, _cmd_import),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coe-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, command in COMMANDS:
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(func=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os

    # MLflow draws a progress bar on stdout for every artifact it downloads (the spec YAML of each sweep
    # read): noise inside tables and JSON answers. Users who want it back set the variable themselves.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except Exception:  # a failure no command expected: its traceback, with any credential redacted
        import traceback

        from coe_sweep.tracking.connection import redact

        sys.stderr.write(redact(traceback.format_exc(), getattr(args, "tracking_uri", None) or ""))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
