"""The files a `files:` data source names, each one checked against the roots it may be read from.

A `files:` argument is a file, a directory (its supported files) or a glob (`*`, `?`, `[...]`, `**`).
Every file it resolves to is followed through its symlinks (`os.path.realpath`) and must lie inside
one of the allowed roots. Checking the pattern alone is not enough: a glob component (`l?nk/`, `*/`,
`**/`) can pass through a symlinked directory that the literal pattern never names. The roots are
 - for a spec (coe_sweep.spec.load): the spec file's directory and the roots in $COE_SWEEP_DATA_ROOTS;
 - for the loader in a trial (runners.data): the directory the pattern's literal part names (a glob
   never leads out of the directory it starts in) and the roots in $COE_SWEEP_DATA_ROOTS.
Standard library only, so that loading a spec stays light; it lives in coe_sweep (not runners) because
both the spec and the trial's data loader use it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DATA_ROOTS_ENV = "COE_SWEEP_DATA_ROOTS"
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text"}
GLOB_CHARS = "*?["
MAX_FILES = 100_000  # a glob over a whole disk is a mistake, not a data set


class DataError(ValueError):
    """Bad data configuration or unusable source (a ValueError: bad input, nothing trained)."""


@dataclass(frozen=True)
class FilesProblem:
    """Why a pattern's files cannot be used: `what` is wrong, `expected` is what would work."""

    outside: bool  # a matched file lies outside the allowed roots (the caller may word the roots itself)
    what: str
    expected: str


def data_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The roots listed in $COE_SWEEP_DATA_ROOTS (os.pathsep-separated), symlinks resolved."""
    raw = (os.environ if environ is None else environ).get(DATA_ROOTS_ENV, "")
    return [Path(os.path.realpath(entry)) for entry in raw.split(os.pathsep) if entry.strip()]


def literal_root(pattern: str) -> Path:
    """The leading path components of `pattern` that hold no glob character (the whole path if none do)."""
    parts = Path(pattern).parts
    for i, part in enumerate(parts):
        if any(c in part for c in GLOB_CHARS):
            return Path(*parts[:i]) if i else Path(".")
    return Path(pattern)


def is_inside(path: Path, roots: Sequence[Path]) -> bool:
    """True when the real path of `path` is one of `roots` or lies below one (roots are real paths)."""
    real = Path(os.path.realpath(path))
    return any(real == root or root in real.parents for root in roots)


def expand(pattern: str) -> list[Path]:
    """The files `pattern` names, sorted: a glob's matching files, a directory's supported files, or the file."""
    if any(c in pattern for c in GLOB_CHARS):
        matches: list[Path] = []
        for found in glob.iglob(pattern, recursive=True):
            if Path(found).is_file():
                matches.append(Path(found))
                if len(matches) > MAX_FILES:
                    break
        return sorted(matches)
    path = Path(pattern)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in FILE_BUILDERS and p.is_file())
    return [path] if path.is_file() else []


def check_files(pattern: str, roots: Sequence[Path]) -> tuple[list[Path], FilesProblem | None]:
    """(files, None) when `pattern` names usable files that all lie inside `roots`, else ([], the first
    problem): nothing matches, too many files, a file outside the roots, unsupported extensions, mixed formats."""
    files = expand(pattern)
    if not files:
        return [], FilesProblem(False, f"no file matches {pattern!r}", "a path, directory or glob that matches at "
                                f"least one file ({'/'.join(sorted(FILE_BUILDERS))})")
    if len(files) > MAX_FILES:
        return [], FilesProblem(False, f"more than {MAX_FILES} files match {pattern!r}", f"at most {MAX_FILES} files")
    outside = [p for p in files if not is_inside(p, roots)]
    if outside:
        shown = ", ".join(f"{p} -> {os.path.realpath(p)}" for p in outside[:3])
        return [], FilesProblem(True, f"{len(outside)} matched file(s) lie outside them ({shown})",
                                "files that lie, symlinks followed, inside " + " or ".join(map(str, roots)))
    unsupported = [str(p) for p in files if p.suffix not in FILE_BUILDERS]
    if unsupported:
        return [], FilesProblem(False, f"unsupported file(s) {unsupported[:5]}", f"extensions {sorted(FILE_BUILDERS)}")
    builders = {FILE_BUILDERS[p.suffix] for p in files}
    if len(builders) > 1:
        return [], FilesProblem(False, f"files of formats {sorted(builders)}", "files of one format")
    return files, None


def resolve_files(pattern: str) -> list[Path]:
    """The files a trial reads for `files:PATTERN`: inside the directory the pattern's literal part names or
    a root of $COE_SWEEP_DATA_ROOTS; DataError naming the source otherwise."""
    expanded = os.path.expanduser(pattern)
    roots = [Path(os.path.realpath(literal_root(expanded))), *data_roots()]
    files, problem = check_files(expanded, roots)
    if problem is not None:
        raise DataError(f"DataConfig.source='files:{pattern}' is invalid: {problem.what} (cwd {os.getcwd()}); "
                        f"expected {problem.expected}")
    return files
