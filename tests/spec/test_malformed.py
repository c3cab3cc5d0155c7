"""The bad-input corpus: every file in tests/spec/malformed/ is refused with a message that names the
file, the line (the one marked `# <- error`) or the `--set` override, and the field, says what was found
and what is accepted; through the CLI, `coe-sweep plan` exits 2 with the message on stderr and writes
nothing. Cases with `# layout:` lines are copied into a scratch directory beside the files they name
(symlinks included); cases with `# set:` lines pass those overrides (see make_corpus.py)."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from coe_sweep.cli import main
from coe_sweep.search.feasibility import load_feasible_spec
from coe_sweep.spec import SpecError

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.yaml"))
MARKER = "# <- error"


@dataclass(frozen=True)
class Case:
    path: Path  # where the spec is loaded from (a scratch copy for layout cases)
    expects: list[str]
    line: int | None
    overrides: list[str]


def _header(lines: list[str], key: str) -> list[str]:
    return [line.removeprefix(f"# {key}: ") for line in lines if line.startswith(f"# {key}: ")]


def _make_layout(items: list[str], root: Path) -> None:
    for item in items:
        kind, _, rest = item.partition(" ")
        if kind == "link":
            name, _, target = rest.partition(" -> ")
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, root / name)
        elif kind == "dir":
            (root / rest).mkdir(parents=True, exist_ok=True)
        else:
            (root / rest).parent.mkdir(parents=True, exist_ok=True)
            (root / rest).write_text('{"text": "2 + 2 = 4"}\n{"text": "3 + 4 = 7"}\n')


def case(path: Path, scratch: Path) -> Case:
    lines = path.read_text().splitlines()
    expects, layout = _header(lines, "expect"), _header(lines, "layout")
    marked = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith(MARKER)]
    assert expects, f"{path.name}: no '# expect:' header"
    assert len(marked) <= 1, f"{path.name}: more than one marked line"
    if layout:
        _make_layout(layout, scratch)
        (scratch / "spec").mkdir(exist_ok=True)
        path = Path(shutil.copy(path, scratch / "spec" / path.name))
    overrides = [item.replace("\\n", "\n") for item in _header(lines, "set")]
    return Case(path, expects, marked[0] if marked else None, overrides)


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 120
    assert sum(bool(_header(p.read_text().splitlines(), "set")) for p in FILES) >= 15
    assert sum(bool(_header(p.read_text().splitlines(), "layout")) for p in FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_refused_with_file_line_field(path: Path, tmp_path: Path) -> None:
    c = case(path, tmp_path)
    with pytest.raises(SpecError) as info:
        load_feasible_spec(c.path, c.overrides)
    message = str(info.value)
    first = message.splitlines()[0]
    where = rf"{re.escape(str(c.path))}: --set \S.*" if c.overrides else rf"{re.escape(str(c.path))}:\d+: .*"
    assert re.match(rf"^{where}: found .*; expected .+", first), message
    if c.line is not None:
        assert f"{c.path}:{c.line}: " in message, message
    for fragment in c.expects:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_cli_plan_exits_2_and_writes_nothing(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    c = case(path, tmp_path / "scratch")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["plan", str(c.path), *[a for o in c.overrides for a in ("--set", o)]]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(c.path) in captured.err and "expected" in captured.err and "Traceback" not in captured.err
    assert list(cwd.iterdir()) == []
