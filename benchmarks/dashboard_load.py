"""The dashboard under load: N concurrent clients against a real uvicorn server on 127.0.0.1.

Seeds (once, cached under $TMPDIR/coe-sweep-bench/) a 240-trial sweep through the real writer
(`SweepTracker`, trial values from tests/dashboard/sweepgen.py), starts `uvicorn` with the dashboard in
a subprocess, and runs three phases of --seconds each with --clients threads, each client with its own
keep-alive HTTP connection, cycling through the sweep's answers (list, detail, frontier for three x,
scaling, optimal, Pareto for two objective sets, compare, trials pages):
  cold    a fresh server: everything is computed while the clients arrive;
  warm    the same server afterwards (memoised answers);
  storm   half the clients ask for unknown sweep names (404 expected), half keep asking valid questions;
          the figure is the valid requests' p99 against their warm p99.
Reports p50/p99 (ms) and errors (non-200 answers to valid requests, non-404 to unknown names,
exceptions). With --baseline DIR the same phases run a second server whose `dashboard` and `coe_sweep`
come from another checkout (the code before a change), side by side, with ratios baseline / this code.
Goals (issue #12, 32 clients, a few hundred trials): p99 < 1 s warm, < 3 s cold, storm <= 2x warm.
Run: .venv/bin/python benchmarks/dashboard_load.py [--clients 32] [--seconds 20] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

for _key, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "dashboard"))

import httpx  # noqa: E402
import sweepgen  # noqa: E402  (tests/dashboard/sweepgen.py: plans + simulated results)

SWEEP = "load-240"
SEED_VERSION = "1"
GOALS_MS = {"warm": 1000.0, "cold": 3000.0}
STORM_GOAL_RATIO = 2.0


def seed() -> Path:
    """A finished 240-trial sweep (4 budgets x 6 widths x 2 depths x 5 CoE/MoE variants), cached."""
    key = hashlib.sha256(SEED_VERSION.encode() + (REPO / "tests/dashboard/sweepgen.py").read_bytes()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / "coe-sweep-bench" / f"{SWEEP}-{key}"
    if (root / "mlflow.db").exists():
        return root / "mlflow.db"
    from coe_sweep.tracking import SweepTracker

    building = root.with_name(root.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    plans = list(sweepgen.grid(budgets=(("1e12", 1e12), ("3e12", 3e12), ("1e13", 1e13), ("3e13", 3e13)),
                               d_models=(16, 24, 32, 48, 64, 96), iterations=(1, 2, 3), top_ks=(1, 2),
                               n_layers=(1, 2)))[:240]
    tracker = SweepTracker(f"sqlite:///{building / 'mlflow.db'}", SWEEP, f"name: {SWEEP}\n", f"spec-{SWEEP}",
                           journal_dir=str(building / "journal"), simulated=True)
    tracker.start()
    for p in plans:
        tracker.log_result(tracker.start_trial(p.config_hash, p.flat_params()), sweepgen.result_for(p))
    tracker.finish("FINISHED")
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    return root / "mlflow.db"


def urls() -> list[str]:
    base = f"/api/sweeps/{SWEEP}"
    return ["/api/sweeps", base, f"{base}/frontier", f"{base}/frontier?x=params_total", f"{base}/frontier?x=tokens",
            f"{base}/scaling", f"{base}/optimal?flops=1e14", f"{base}/pareto",
            f"{base}/pareto?objectives=final_val_loss:min,params_total:min", f"{base}/compare",
            f"{base}/trials?limit=50", f"{base}/trials?limit=50&sort=final_val_loss&order=desc"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn serving the dashboard over `db`, importing `dashboard` and `coe_sweep` from `code`."""

    def __init__(self, code: Path, db: Path) -> None:
        self.port = free_port()
        program = ("import sys, uvicorn\n"
                   f"sys.path.insert(0, {str(code)!r})\n"
                   "from coe_sweep.tracking import TrackingStore\n"
                   "from dashboard import create_app\n"
                   "from dashboard.settings import Settings\n"
                   f"uri = 'sqlite:///{db}'\n"
                   "app = create_app(TrackingStore(uri), Settings(tracking_uri=uri, cache_ttl_s=3600))\n"
                   f"uvicorn.run(app, host='127.0.0.1', port={self.port}, log_level='warning')\n")
        self.log = open(Path(tempfile.gettempdir()) / f"dashboard-load-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-c", program], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=os.environ | {"PYTHONPATH": str(code)}, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit(f"the dashboard on port {self.port} did not start; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@dataclass
class Phase:
    valid_ms: list[float] = field(default_factory=list)
    unknown_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def p(self, q: float, values: list[float] | None = None) -> float:
        values = sorted(self.valid_ms if values is None else values)
        return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def run_phase(port: int, clients: int, seconds: float, storm: bool) -> Phase:
    phase, lock = Phase(), threading.Lock()
    valid = urls()
    deadline = time.monotonic() + seconds
    start = threading.Barrier(clients)

    def client(index: int) -> None:
        unknown = storm and index % 2 == 1
        cycle = itertools.cycle(valid[index % len(valid):] + valid[:index % len(valid)])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            start.wait()
            while time.monotonic() < deadline:
                url = f"/api/sweeps/no-such-{uuid.uuid4().hex[:12]}/frontier" if unknown else next(cycle)
                t0 = time.perf_counter()
                try:
                    status = http.get(url).status_code
                except httpx.HTTPError:
                    status = -1
                elapsed_ms = (time.perf_counter() - t0) * 1000
                with lock:
                    (phase.unknown_ms if unknown else phase.valid_ms).append(elapsed_ms)
                    phase.errors += status != (404 if unknown else 200)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return phase


def measure(code: Path, db: Path, clients: int, seconds: float) -> dict[str, Phase]:
    server = Server(code, db)
    try:
        return {"cold": run_phase(server.port, clients, seconds, storm=False),
                "warm": run_phase(server.port, clients, seconds, storm=False),
                "storm": run_phase(server.port, clients, seconds, storm=True)}
    finally:
        server.stop()


def report(label: str, phases: dict[str, Phase]) -> None:
    print(f"\n{label}")
    print(f"{'phase':<7} {'requests':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}  goal")
    warm_p99 = phases["warm"].p(99)
    for name, ph in phases.items():
        if name == "storm":
            goal = f"valid p99 / warm p99 = {ph.p(99) / warm_p99:.2f} (<= {STORM_GOAL_RATIO:g})"
        else:
            goal = f"p99 < {GOALS_MS[name]:.0f} ms: {'yes' if ph.p(99) < GOALS_MS[name] else 'NO'}"
        print(f"{name:<7} {len(ph.valid_ms):>9} {ph.p(50):>9.1f} {ph.p(99):>9.1f} {ph.errors:>7}  {goal}")
        if ph.unknown_ms:
            print(f"{'':<7} {len(ph.unknown_ms):>9} {ph.p(50, ph.unknown_ms):>9.1f} {ph.p(99, ph.unknown_ms):>9.1f}"
                  f" {'':>7}  (unknown-name requests, 404 expected)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to measure side by side")
    args = parser.parse_args()
    db = seed()
    print(f"dashboard load: {args.clients} clients, {args.seconds:g} s per phase, {SWEEP} ({db}); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    ours = measure(REPO, db, args.clients, args.seconds)
    report(f"this checkout ({REPO})", ours)
    if args.baseline is not None:
        theirs = measure(args.baseline.resolve(), db, args.clients, args.seconds)
        report(f"baseline ({args.baseline})", theirs)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        print("\nratio baseline / this checkout (p99): " + ", ".join(
            f"{name} {theirs[name].p(99) / ours[name].p(99):.1f}x" for name in ours))


if __name__ == "__main__":
    main()
