"""Helpers for the orchestration tests (tests/sweep, tests/faults): tiny specs, Ray processes, MLflow reads.

Ray processes started by a test (or left behind by a driver killed with -9) are found by their process
group and by their private temp dir, and killed by PID: never `ray stop` (other people's clusters).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
RAY_BIN = str(Path(sys.executable).with_name("ray"))

TINY_MODEL = {"n_heads": 2, "n_layers": 1, "d_expert": 16, "n_experts": 4, "n_shared": 1}


def write_spec(tmp: Path, name: str = "t-sim", *, algorithm: str = "tpe", trials: int | None = 4,
               flops: list[float] | None = None, space: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None, max_concurrent: int = 2, address: str | None = None,
               train: dict[str, Any] | None = None, objectives: list[str] | None = None) -> Path:
    """A small spec under `tmp` (own MLflow sqlite and storage) and return its path."""
    spec: dict[str, Any] = {
        "name": name,
        "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        "cluster": {"cpus_per_trial": 1, "max_concurrent": max_concurrent, "storage_path": str(tmp / "sweeps")},
        "data": {"source": "builtin:arithmetic", "num_examples": 2000, "val_tokens": 2048,
                 "cache_dir": str(tmp / "data-cache")},
        "model": dict(TINY_MODEL),
        "space": space or {"iterations": {"choice": [1, 2]}, "top_k": {"choice": [1, 2]},
                           "d_model": {"choice": [32, 64]}},
        "budget": {"flops": flops or [2e10, 6e10]},
        "search": {"algorithm": algorithm, "seed": 0, **({"trials_per_budget": trials} if trials else {})},
        "train": {"batch_size": 4, "seq_len": 32, "eval_interval": 200, "warmup_steps": 2, "threads": 1,
                  **(train or {})},
    }
    if objectives:
        spec["search"]["objectives"] = objectives
    if address:
        spec["cluster"]["address"] = address
    for key, value in (extra or {}).items():
        section, _, field = key.partition(".")
        if field:
            spec.setdefault(section, {})[field] = value
        else:
            spec[section] = value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true",
                "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                "PYTHONPATH": str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    return env


def pids_matching(text: str) -> set[int]:
    """PIDs whose command line contains `text` (our own temp dir names: never another user's processes)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.add(int(entry.name))
    return found


def pgid_members(pgid: int) -> set[int]:
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    members.add(int(entry.name))
            except OSError:
                continue
    return members


def children_of(parents: set[int]) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid in parents:
                kids.add(int(entry.name))
    return kids


def reap(pgids: set[int] = frozenset(), marker: str | None = None, timeout_s: float = 15.0) -> None:
    """SIGKILL every process of these process groups and every process whose cmdline holds `marker`.

    Ray's agents ignore SIGTERM and outlive a kill -9'd driver (DESIGN.md), hence SIGKILL by PID.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = set()
        for pgid in pgids:
            pids |= pgid_members(pgid)
        if marker:
            pids |= pids_matching(marker)
            for pid in list(pids):  # the agents renamed themselves (ray::...) but kept the group
                try:
                    pids |= pgid_members(os.getpgid(pid))
                except OSError:
                    pass
        pids.discard(os.getpid())
        pids -= pgid_members(os.getpgrp())  # never ourselves or pytest's own group
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class RayNode:
    """`ray start` (head or worker) in its own process group, every port free; `stop()` kills it by PID."""

    def __init__(self, tmp: Path, *, address: str | None = None, num_cpus: int = 1) -> None:
        self.temp_dir = Path(f"/tmp/coe-test-ray-{os.getpid()}-{free_port()}")
        ports = [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                 f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                 f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]
        args = [RAY_BIN, "start", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--num-gpus=0",
                "--disable-usage-stats", *ports]
        if address is None:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
            self.address = f"127.0.0.1:{free_port()}"
            args += ["--head", f"--port={self.address.rsplit(':', 1)[1]}", "--include-dashboard=false",
                     f"--temp-dir={self.temp_dir}"]
            self.marker: str | None = str(self.temp_dir)
        else:
            self.address, self.marker = address, None
            args += [f"--address={address}"]
        self.log = tmp / f"ray-start-{self.temp_dir.name}.log"
        # with the session's token (tests/conftest.py); a multi-node cluster cannot be kept on loopback (a
        # worker node refuses Ray's local-only switch), so its operator secures it: README "Security"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=test_env(),
                                         start_new_session=True, cwd=tmp)
        self.pgid = self.proc.pid
        rc = self.proc.wait(timeout=180)
        if rc != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({rc}): {self.log.read_text()[-2000:]}")

    def pids(self) -> set[int]:
        """The node's processes, and their children: Ray's worker processes run in their own sessions."""
        own = pgid_members(self.pgid) | (pids_matching(self.marker) if self.marker else set())
        return own | children_of(own)

    def stop(self) -> None:
        workers = children_of(pgid_members(self.pgid))
        reap({self.pgid}, marker=self.marker)
        for pid in workers:  # worker processes whose raylet just died
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.marker:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def launch_cli(spec: Path, *args: str, cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m coe_sweep.cli launch SPEC ...` as a subprocess in its own process group.

    SIGINT is reset to its default in the child: a test run started in the background by a
    non-interactive shell (CI scripts) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt, as a nohup'd program should not.
    """
    out = open(log, "w")  # noqa: SIM115 - closed with the process by the caller's reap/wait
    return subprocess.Popen([PYTHON, "-m", "coe_sweep.cli", "launch", str(spec), "--no-progress", *args],
                            stdout=out, stderr=subprocess.STDOUT, env=env or test_env(), cwd=cwd, start_new_session=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def launch_to_end(spec: Path, *args: str, cwd: Path, log: Path, timeout_s: float = 400) -> int:
    """`coe-sweep launch` run to completion (its Ray processes reaped); returns the exit status."""
    driver = launch_cli(spec, *args, cwd=cwd, log=log)
    try:
        return driver.wait(timeout=timeout_s)
    finally:
        reap({driver.pid}, marker=f"coe-ray-{driver.pid}-")


def wait_while_running(driver: subprocess.Popen, log: Path, predicate: Callable[[], Any], timeout_s: float,
                       what: str) -> Any:
    """wait_for(predicate), failing at once (with the driver's log) if the driver exits first."""
    def check() -> Any:
        if driver.poll() is not None:
            raise AssertionError(f"the driver exited ({driver.returncode}) early: {log.read_text()[-3000:]}")
        return predicate()

    return wait_for(check, timeout_s, what)


def mlflow_children(uri: str, sweep: str) -> list[Any]:
    """Every child (trial) run of the sweep experiment, straight from MLflow."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(sweep)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], "tags.`coe_sweep.kind` = 'trial'", max_results=5000)
    return list(runs)


def record_name(run: Any) -> str:
    """The stem of an MLflow trial run's result record in the sweep store: `<config hash>-s<seed>`."""
    return f"{run.data.tags['coe_sweep.config_hash']}-s{run.data.tags['coe_sweep.seed']}"
