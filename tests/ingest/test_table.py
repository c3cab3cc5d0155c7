"""Reading tables of runs: good files in every format give the same runs; the malformed corpus is refused with
file, line, field, value and what is accepted, and `coe-sweep import` exits 2 having written nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from coe_sweep.cli import main
from coe_sweep.ingest import ImportRefused, read_table

from .make_corpus import CASES, OUT

CORPUS = sorted(OUT.iterdir())


def test_corpus_is_large_and_current() -> None:
    assert len(CORPUS) >= 15 and {p.name for p in CORPUS} == set(CASES)
    for path in CORPUS:
        if path.suffix != ".parquet":  # parquet bytes depend on the pyarrow version
            assert path.read_bytes() == CASES[path.name][0], f"{path.name}: run tests/ingest/make_corpus.py"


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_refused_with_file_line_field_value(path: Path) -> None:
    _, line, fragments, mapping = CASES[path.name]
    with pytest.raises(ImportRefused) as info:
        read_table(path, mapping)
    message = str(info.value)
    assert str(path) in message and "expected" in message, message
    if line is not None:
        where = f"{path}: row {line}" if path.suffix == ".parquet" else f"{path}:{line}: "
        assert where in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_cli_exits_2_and_writes_nothing(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "mlflow.db"
    maps = [f"--map={k}={v}" for k, v in CASES[path.name][3].items()]
    assert main(["import", str(path), "--sweep", "bad", *maps, "--tracking-uri", f"sqlite:///{db}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and str(path) in captured.err and "expected" in captured.err
    assert not db.exists()  # validation ran before the store was even opened


def _runs_frame() -> pd.DataFrame:
    return pd.DataFrame({"N": [1e6, 2e6, 4e6, 1e6, 2e6, 4e6], "FLOPs": [1e15, 1.05e15, 0.97e15, 1e16, 1e16, 1.1e16],
                         "val": [3.2, 3.1, 3.15, 2.9, 2.8, 2.85], "run seed": [0, 0, 0, 1, 1, 1],
                         "C": [1, 2, 3, 1, 2, 3], "arm": ["moe", "coe-C2", "coe-C3"] * 2})


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_format_gives_the_same_runs(fmt: str, tmp_path: Path) -> None:
    frame = _runs_frame()
    path = tmp_path / f"runs.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict(orient="records")) + "\n")
    plan = read_table(path, {"params": "N", "flops": "FLOPs", "loss": "val", "seed": "run seed", "iterations": "C"})
    assert [r.params for r in plan.runs] == list(frame["N"]) and [r.seed for r in plan.runs] == [0, 0, 0, 1, 1, 1]
    assert [r.budget_label for r in plan.runs] == ["1e+15"] * 3 + ["1e+16"] * 3  # levels found from FLOPs
    assert plan.runs[1].model == {"model.iterations": 2} and plan.runs[1].arm == "coe-C2"
    assert plan.runs[0].tokens == pytest.approx(1e15 / 6e6) and plan.flops_rule.startswith("6N")
    first = [r.line for r in plan.runs][0]
    assert first == {"csv": 2, "parquet": 1, "jsonl": 1}[fmt]


def test_levels_given_and_tolerance(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    _runs_frame().to_csv(path, index=False)
    mapping = {"params": "N", "flops": "FLOPs", "loss": "val", "seed": "run seed"}
    plan = read_table(path, mapping, levels=[1e15, 1e16], tol_log=0.05)
    assert [r.budget_label for r in plan.runs] == ["1e+15", "1e+15", "1e+15", "1e+16", "1e+16", None]  # 1.1e16 off
    assert plan.off_level == 1 and plan.runs[0].budget_flops == 1e15
    with pytest.raises(ImportRefused, match="--tol-log: tol_log=-1"):
        read_table(path, mapping, tol_log=-1)
    with pytest.raises(ImportRefused, match=r"--levels=\[0.0\] is invalid"):
        read_table(path, mapping, levels=[0.0])
    with pytest.raises(ImportRefused, match="found 'size', which is not a field"):
        read_table(path, {**mapping, "size": "N"})


def test_cli_option_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "runs.csv"
    _runs_frame().to_csv(path, index=False)
    base = ["import", str(path), "--sweep", "x", "--tracking-uri", f"sqlite:///{tmp_path / 'db.sqlite'}"]
    assert main([*base, "--map", "params"]) == 2 and "expected FIELD=COLUMN" in capsys.readouterr().err
    assert main([*base, "--map", "params=N", "--levels", "1e15,lots"]) == 2
    assert "--levels='1e15,lots' is invalid" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "nope.csv"), "--sweep", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "db.sqlite").exists()
