"""The command line's rich consoles (one rule for width, everywhere) and how to name our programs in hints.

On a terminal, rich follows the terminal's width. Piped (a log file, CI, `| less`), rich would fall back
to 80 columns and cut our tables; we use `COLUMNS` when it is set, else `PIPE_WIDTH`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from rich.console import Console

PIPE_WIDTH = 160
SIMULATED_LINE = "SIMULATED: losses from the simulated law (launch --simulate), not from training"


def make_console(*, stderr: bool = False, width: int | None = None, **kwargs: object) -> Console:
    """A Console on stdout (or stderr): the terminal's width, or `width` / COLUMNS / PIPE_WIDTH when piped."""
    stream = sys.stderr if stderr else sys.stdout
    if width is None and not stream.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH
    return Console(stderr=stderr, width=width, **kwargs)  # type: ignore[arg-type]


def is_terminal(*, stderr: bool = False) -> bool:
    return (sys.stderr if stderr else sys.stdout).isatty()


def program(name: str = "coe-sweep") -> str:
    """How to run `name` (coe-sweep, mlflow) again from here, as this process was run: the bare name when the
    shell finds this very script on PATH, else its path (`.venv/bin/coe-sweep` when run from the venv without
    activating it), else `python -m coe_sweep.cli`."""
    argv0 = Path(sys.argv[0])
    script = argv0 if argv0.name == name else Path(sys.executable).with_name(name)
    if not script.exists():
        return f"{sys.executable} -m coe_sweep.cli" if name == "coe-sweep" else name
    found = shutil.which(name)
    if found and Path(found).resolve() == script.resolve():
        return name
    relative = os.path.relpath(script.absolute())
    return relative if not relative.startswith("..") else str(script.absolute())
