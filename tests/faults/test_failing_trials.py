"""REAL trials that diverge (NaN) or raise: recorded FAILED with status and reason, the sweep completes,
the CLI summary counts them and exits 1.

Injected through spec fields, not mocks: `routed_scaling: 1e9` with 3 chain iterations overflows fp32 to
NaN at the first evaluation (diverged); `data.source: files:notes.jsonl` names a file that exists in a supported
format (the spec accepts it) but holds one document, which the runner's data layer refuses before training
(failed). One ordinary trial must
still finish ok.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import TINY_MODEL, mlflow_children, write_spec

from coe_sweep.cli import main

pytestmark = pytest.mark.slow


def test_diverged_and_raising_trials_are_recorded_and_the_sweep_completes(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes.jsonl").write_text('{"question": "1+1", "answer": "2"}\n')
    path = write_spec(tmp_path, "faulty", algorithm="grid", trials=None, flops=[3e9], max_concurrent=2,
                      space={"routed_scaling": {"choice": [1.0, 1e9]},
                             "data.source": {"choice": ["builtin:arithmetic", "files:notes.jsonl"]}},
                      train={"eval_interval": 10},
                      extra={"model": {**TINY_MODEL, "d_model": 32, "iterations": 3},
                             "data": {"val_tokens": 2048, "num_examples": 2000,
                                      "cache_dir": str(tmp_path / "data-cache")}})
    code = main(["launch", str(path)])
    out = capsys.readouterr().out
    assert code == 1, out
    runs = {(r.data.params["model.routed_scaling"], r.data.params["data.source"].rpartition("/")[2]): r
            for r in mlflow_children(f"sqlite:///{tmp_path / 'mlflow.db'}", "faulty")}
    assert len(runs) == 4
    ok = runs[("1.0", "builtin:arithmetic")]
    assert ok.info.status == "FINISHED" and ok.data.tags["coe_sweep.status"] == "ok"
    diverged = runs[("1000000000.0", "builtin:arithmetic")]
    assert diverged.info.status == "FAILED" and diverged.data.tags["coe_sweep.status"] == "diverged"
    assert "nan" in diverged.data.tags["coe_sweep.reason"].lower()
    for scaling in ("1.0", "1000000000.0"):
        raised = runs[(scaling, "notes.jsonl")]
        assert raised.info.status == "FAILED" and raised.data.tags["coe_sweep.status"] == "failed"
        assert "non-empty document" in raised.data.tags["coe_sweep.reason"]
    # the summary counts them: 1 ok, 3 failed
    row = next(line for line in out.splitlines() if line.startswith("│ 3e9"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[2:4] == ["1", "3"]
    assert "failed trials" in out
