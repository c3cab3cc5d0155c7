"""The command line's rich consoles: one rule for width, everywhere.

On a terminal, rich follows the terminal's width. Piped (a log file, CI, `| less`), rich would fall back
to 80 columns and cut our tables; we use `COLUMNS` when it is set, else `PIPE_WIDTH`.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPE_WIDTH = 160


def make_console(*, stderr: bool = False, width: int | None = None, **kwargs: object) -> Console:
    """A Console on stdout (or stderr): the terminal's width, or `width` / COLUMNS / PIPE_WIDTH when piped."""
    stream = sys.stderr if stderr else sys.stdout
    if width is None and not stream.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH
    return Console(stderr=stderr, width=width, **kwargs)  # type: ignore[arg-type]


def is_terminal(*, stderr: bool = False) -> bool:
    return (sys.stderr if stderr else sys.stdout).isatty()
