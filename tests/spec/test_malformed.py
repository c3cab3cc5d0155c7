"""The bad-input corpus: every file in tests/spec/malformed/ is refused with a message that names the
file, the line (the one marked `# <- error`) and the field, says what was found and what is accepted;
through the CLI, `coe-sweep plan` exits 2 with the message on stderr and writes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coe_sweep.cli import main
from coe_sweep.search.feasibility import load_feasible_spec
from coe_sweep.spec import SpecError

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.yaml"))
MARKER = "# <- error"


def _expectations(path: Path) -> tuple[list[str], int | None]:
    lines = path.read_text().splitlines()
    expects = [line.removeprefix("# expect: ") for line in lines if line.startswith("# expect: ")]
    marked = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith(MARKER)]
    assert expects, f"{path.name}: no '# expect:' header"
    assert len(marked) <= 1, f"{path.name}: more than one marked line"
    return expects, (marked[0] if marked else None)


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_refused_with_file_line_field(path: Path) -> None:
    expects, line = _expectations(path)
    with pytest.raises(SpecError) as info:
        load_feasible_spec(path)
    message = str(info.value)
    first = message.splitlines()[0]
    assert re.match(rf"^{re.escape(str(path))}:\d+: .*: found .*; expected .+", first), message
    if line is not None:
        assert f"{path}:{line}: " in message, message
    for fragment in expects:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_cli_plan_exits_2_and_writes_nothing(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(path) in captured.err and "expected" in captured.err
    assert list(tmp_path.iterdir()) == []
