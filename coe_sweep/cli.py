"""The `coe-sweep` command line: parse, validate, call one library function, render.

Each subcommand is one `_cmd_*` function. Heavy imports (torch, ray, mlflow) happen inside the
function that needs them, so `coe-sweep --help` and spec validation stay fast.
Exit status: 0 ok, 1 the work ran but something failed, 2 bad input (nothing was started).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _cmd_train(args: argparse.Namespace) -> int:
    raise NotImplementedError("train: not wired yet")


def _cmd_plan(args: argparse.Namespace) -> int:
    raise NotImplementedError("plan: not wired yet")


def _cmd_launch(args: argparse.Namespace) -> int:
    raise NotImplementedError("launch: not wired yet")


def _cmd_status(args: argparse.Namespace) -> int:
    raise NotImplementedError("status: not wired yet")


def _cmd_dashboard(args: argparse.Namespace) -> int:
    raise NotImplementedError("dashboard: not wired yet")


def _cmd_pareto(args: argparse.Namespace) -> int:
    raise NotImplementedError("pareto: not wired yet")


def _cmd_optimal(args: argparse.Namespace) -> int:
    raise NotImplementedError("optimal: not wired yet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coe-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one configuration (flags or a YAML file)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("plan", help="print the candidate table of a sweep spec; runs nothing")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("launch", help="run (or resume) a sweep")
    p.set_defaults(func=_cmd_launch)

    p = sub.add_parser("status", help="progress of a sweep, read from MLflow")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("dashboard", help="serve the FastAPI dashboard")
    p.set_defaults(func=_cmd_dashboard)

    p = sub.add_parser("pareto", help="Pareto-optimal trials of a sweep")
    p.set_defaults(func=_cmd_pareto)

    p = sub.add_parser("optimal", help="predicted compute-optimal config at a budget")
    p.set_defaults(func=_cmd_optimal)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
