"""kill -9 of the driver mid-sweep, then a relaunch: nothing lost, nothing trained twice, no duplicates."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from sweep_helpers import (
    launch_cli,
    launch_to_end,
    mlflow_children,
    pgid_members,
    pids_matching,
    reap,
    wait_for,
    write_spec,
)
from sweep_helpers import test_env as subprocess_env

pytestmark = pytest.mark.slow


def _finished(uri: str, name: str, driver: subprocess.Popen, log: Path) -> list:
    if driver.poll() is not None:
        raise AssertionError(f"the driver exited ({driver.returncode}) early: {log.read_text()[-3000:]}")
    # read MLflow only once the driver has created its tables (two first-time migrations of one sqlite race)
    if not list(log.parent.glob("sweeps/*/journal.jsonl")):
        return []
    return [r for r in mlflow_children(uri, name) if r.info.status == "FINISHED"]


@pytest.mark.parametrize(("seeds", "configs"), [(1, 4), (3, 2)], ids=["1-seed", "3-seeds"])
def test_kill_driver_then_relaunch_keeps_every_trial_exactly_once(tmp_path: Path, seeds: int, configs: int) -> None:
    """Every (config, seed) exactly once after a kill -9 and a relaunch: 2 budgets x `configs` x `seeds`."""
    spec = write_spec(tmp_path, "killme", trials=configs, flops=[2e10, 6e10], max_concurrent=2,
                      extra={"search": {"algorithm": "tpe", "seed": 0, "trials_per_budget": configs, "seeds": seeds}})
    expected = 2 * configs * seeds
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = launch_cli(spec, "--simulate", "--simulate-trial-s", "3", cwd=tmp_path, log=tmp_path / "first.log")
    marker = f"coe-ray-{driver.pid}-"
    try:
        wait_for(lambda: len(_finished(uri, "killme", driver, tmp_path / "first.log")) >= 2, 240,
                 "two finished trials in MLflow")
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        survivors = pids_matching(marker) | pgid_members(driver.pid)
        reap({driver.pid}, marker=marker)
        for leftover in Path("/tmp").glob(f"{marker}*"):  # the killed driver could not remove its Ray temp dir
            shutil.rmtree(leftover, ignore_errors=True)
    assert not pids_matching(marker) and not pgid_members(driver.pid)
    assert survivors, "expected Ray processes to outlive the killed driver (DESIGN.md); reaped them"
    results = next((tmp_path / "sweeps").glob("*/results"))
    before = {p.stem: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert len(before) >= 2 and len(before) < expected, "the kill should land mid-sweep"

    rc = launch_to_end(spec, "--simulate", cwd=tmp_path, log=tmp_path / "second.log")
    assert rc == 0, (tmp_path / "second.log").read_text()[-3000:]

    children = mlflow_children(uri, "killme")
    keys = [(r.data.tags["coe_sweep.config_hash"], int(r.data.tags["coe_sweep.seed"])) for r in children]
    assert len(keys) == len(set(keys)) == expected  # 2 budgets x configs x seeds, each (config, seed) once
    assert all(r.info.status == "FINISHED" and r.data.tags["coe_sweep.status"] == "ok" for r in children)
    by_config: dict[str, set[int]] = {}
    for config_hash, seed in keys:
        by_config.setdefault(config_hash, set()).add(seed)
    assert len(by_config) == 2 * configs and all(s == set(range(seeds)) for s in by_config.values())
    per_budget: dict[str, int] = {}
    for r in children:
        per_budget[r.data.params["budget_label"]] = per_budget.get(r.data.params["budget_label"], 0) + 1
        assert r.info.run_name == r.data.tags["coe_sweep.trial_id"] == f"{r.data.tags['coe_sweep.config_hash'][:8]}-s" \
            f"{r.data.tags['coe_sweep.seed']}"
    assert per_budget == {"2e10": configs * seeds, "6e10": configs * seeds}
    after = {p.stem: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert set(after) == {f"{h}-s{s}" for h, s in keys}
    assert all(after[name] == before[name] for name in before), "a trial finished before the kill was trained again"
    journal = [json.loads(line) for line in (results.parent / "journal.jsonl").read_text().splitlines()
               if line.startswith("{") and line.endswith("}")]
    starts = [f"{e['config_hash']}-s{e['seed']}" for e in journal if e["event"] == "start"]
    assert all(starts.count(name) == 1 for name in before)
    # both launches ran every budget in one (interleaved) Tune experiment
    assert sorted(p.name for p in (results.parent / "tune").iterdir()) == ["sweep-0", "sweep-1"]
    import mlflow

    exp = mlflow.MlflowClient(uri).get_experiment_by_name("killme")
    parents = mlflow.MlflowClient(uri).search_runs([exp.experiment_id], "tags.`coe_sweep.kind` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    summary = (tmp_path / "second.log").read_text()
    assert "resumed" in summary


def test_second_concurrent_launch_refuses(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "twice", trials=2, flops=[2e10], max_concurrent=1)
    first = launch_cli(spec, "--simulate", "--simulate-trial-s", "4", cwd=tmp_path, log=tmp_path / "first.log")
    try:
        wait_for(lambda: list((tmp_path / "sweeps").glob("*/journal.jsonl")), 240, "the first launch's first trial")
        second = subprocess.run([*first.args[:-2], "--simulate"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120, env=subprocess_env())
        assert second.returncode == 2, second.stdout + second.stderr
        assert "already running this sweep" in second.stderr
        rc = first.wait(timeout=300)
    finally:
        reap({first.pid}, marker=f"coe-ray-{first.pid}-")
    assert rc == 0, (tmp_path / "first.log").read_text()[-3000:]
    children = mlflow_children(f"sqlite:///{tmp_path / 'mlflow.db'}", "twice")
    assert len(children) == 2 == len({r.data.tags["coe_sweep.config_hash"] for r in children})
