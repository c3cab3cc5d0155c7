"""Behaviour pin: the MLflow params, metrics and tags a simulated sweep writes, against a golden file.

Two simulated sweeps (grid with a bundle, a constraint and diverging trials; random sampling) run on real
Ray and a real sqlite MLflow store; everything they logged is read back, the values that depend on the
clock or the machine are replaced by placeholders (wall_s, run ids, times), and the result must equal
tests/sweep/golden/simulated_sweep_mlflow.json exactly. Regenerate it (only for an intended change,
saying why in the commit) with:

    COE_SWEEP_WRITE_GOLDEN=1 .venv/bin/python -m pytest -q tests/sweep/test_golden_mlflow.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sweep_helpers import TINY_MODEL, RayNode, mlflow_children

from coe_sweep.spec import load_spec
from coe_sweep.sweep.driver import launch

GOLDEN = Path(__file__).parent / "golden" / "simulated_sweep_mlflow.json"
MEASURED = "<measured>"  # a value that depends on the clock (wall seconds)
CLOCK_METRICS = ("wall_s", "tokens_per_s")
KEY_PARAMS = ("budget_label", "model.iterations", "model.top_k", "model.d_model", "train.lr")

SWEEPS: dict[str, dict[str, Any]] = {
    "golden-grid": {
        "space": {"arch": {"choice": [{"iterations": 1, "top_k": 2}, {"iterations": 2, "top_k": 1},
                                      {"iterations": 3, "top_k": 1}]},
                  "d_model": {"choice": [32, 64]}, "train.lr": {"choice": [3e-3, 0.5]}},
        "constraints": ["iterations * d_model <= 128"],
        "budget": {"flops": [2e10, 6e10]},
        "search": {"algorithm": "grid", "seed": 0},
    },
    "golden-random": {
        "space": {"iterations": {"choice": [1, 2, 3]}, "top_k": {"choice": [1, 2]},
                  "d_model": {"choice": [32, 64]}},
        "constraints": ["top_k * iterations <= 4"],
        "budget": {"flops": [4e10]},
        "search": {"algorithm": "random", "seed": 3, "trials_per_budget": 4},
    },
}


def _write(tmp: Path, name: str, address: str) -> Path:
    body = SWEEPS[name]
    spec = {"name": name, "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}"},
            "cluster": {"cpus_per_trial": 1, "max_concurrent": 2, "storage_path": str(tmp / "sweeps"),
                        "address": address},
            "data": {"source": "builtin:arithmetic", "num_examples": 2000, "val_tokens": 2048},
            "model": dict(TINY_MODEL), **body,
            "train": {"batch_size": 4, "seq_len": 32, "eval_interval": 100, "warmup_steps": 2, "threads": 1}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _trial_key(params: dict[str, str]) -> str:
    return "|".join(f"{k}={params.get(k)}" for k in KEY_PARAMS)


def _tags(tags: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in tags.items() if k.startswith("coe_sweep.") or k == "mlflow.runName"}
    if "mlflow.parentRunId" in tags:
        out["mlflow.parentRunId"] = "<parent>"
    return out


def _metrics(metrics: dict[str, float]) -> dict[str, Any]:
    return {k: MEASURED if k in CLOCK_METRICS else v for k, v in sorted(metrics.items())}


def _recorded(uri: str, name: str) -> dict[str, Any]:
    """Everything the sweep logged to MLflow, with clock- and machine-dependent values replaced."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    trials: dict[str, Any] = {}
    for run in mlflow_children(uri, name):
        key = _trial_key(run.data.params)
        assert key not in trials, f"two child runs for {key}"
        curves = {metric: sorted([m.step, m.value] for m in client.get_metric_history(run.info.run_id, metric))
                  for metric in ("train_loss", "val_loss")}
        trials[key] = {"run_status": run.info.status, "params": dict(sorted(run.data.params.items())),
                       "tags": _tags(run.data.tags), "metrics": _metrics(run.data.metrics), "curves": curves,
                       "artifacts": sorted(f.path for f in client.list_artifacts(run.info.run_id))}
    exp = client.get_experiment_by_name(name)
    parents = client.search_runs([exp.experiment_id], "tags.`coe_sweep.kind` = 'sweep'")
    assert len(parents) == 1
    parent = parents[0]
    return {"parent": {"run_status": parent.info.status, "tags": _tags(parent.data.tags),
                       "metrics": _metrics(parent.data.metrics),
                       "artifacts": sorted(f.path for f in client.list_artifacts(parent.info.run_id))},
            "trials": dict(sorted(trials.items()))}


def _dumps(data: Any) -> str:
    """Indented JSON with every innermost list (a curve point, a list of names) on one line."""
    text = json.dumps(data, indent=1, sort_keys=True)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def _diff(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                out.append(f"{path}/{key}: missing (expected {expected[key]!r:.200})")
            elif key not in expected:
                out.append(f"{path}/{key}: unexpected {actual[key]!r:.200}")
            else:
                out += _diff(expected[key], actual[key], f"{path}/{key}")
        return out
    return [] if expected == actual else [f"{path}: expected {expected!r:.200}, found {actual!r:.200}"]


@pytest.mark.slow
def test_simulated_sweeps_write_the_golden_mlflow_records(tmp_path: Path, ray_head: RayNode) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recorded: dict[str, Any] = {}
    for name in SWEEPS:
        outcome = launch(load_spec(_write(tmp_path, name, ray_head.address)), simulate=True, progress=False)
        assert outcome.trials, name
        recorded[name] = _recorded(uri, name)
    recorded = json.loads(json.dumps(recorded))  # tuples -> lists, as the file holds them
    if os.environ.get("COE_SWEEP_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(_dumps(recorded))
    golden = json.loads(GOLDEN.read_text())
    problems = _diff(golden, recorded)
    assert not problems, f"{len(problems)} difference(s) from {GOLDEN.name}:\n" + "\n".join(problems[:40])
