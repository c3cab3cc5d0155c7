"""Dashboard latency on a 10,000-trial sweep: the first answer (the sweep list), frontier and Pareto
answers, cold and warm.

Seeds a real MLflow sqlite store (cached under $TMPDIR/coe-sweep-bench/, keyed by N, SEED_VERSION and
sweepgen.py): the sweep's parent run and its first 20 trials through the real writer (`SweepTracker`),
the other trials through MLflow's own SQLAlchemy models in one transaction with the same tags, params
and metrics (the writer/client path costs ~0.14 s a run here: 10,000 runs would take ~25 minutes),
then the writer's resume path (`finished_trials`), which lists the children and keeps their counts on
the parent run as every launch does. Trial values come from real RunSpecs, `coe_sweep.accounting` and
the simulated-loss law. The store is then read only through `coe_sweep.tracking.TrackingStore`, exactly
as the dashboard reads it.

Measures with FastAPI's TestClient (in process, so no socket time):
  list   GET /api/sweeps of a fresh app: counts from the parent run (now), and, side by side on a copy
         of the store whose parent run lacks them (a sweep written before the counts existed, which the
         store counts from its children as every list did before), the ratio of the two;
  cold   the first request of a fresh app (reads the whole sweep, then fits/sorts),
  first  the first request for new parameters on a loaded sweep (compute, no memo),
  warm   repeated requests (p50/p95 over --repeats), the 100 ms p50 target of issue #4.
Run: .venv/bin/python benchmarks/dashboard_latency.py [--trials 10000] [--repeats 200]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

for _key, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "dashboard"))

import sweepgen  # noqa: E402  (tests/dashboard/sweepgen.py: plans + simulated results)

TARGET_MS = 100.0
FIRST_ANSWER_TARGET_MS = 2000.0
SEED_VERSION = "1"  # bump when the seeding below changes
SWEEP = "bench-10k"
BUDGETS = (("1e12", 1e12), ("3e12", 3e12), ("1e13", 1e13), ("3e13", 3e13))
WRITER_TRIALS = 20
log = logging.getLogger("dashboard_latency")


def plans(n: int) -> list[sweepgen.Plan]:
    grid = list(sweepgen.grid(budgets=BUDGETS, d_models=(16, 24, 32, 48, 64, 96, 128, 192), iterations=(1, 2, 3, 4),
                              n_experts=(4, 8, 16, 32), top_ks=(1, 2, 4), n_layers=(1, 2, 3, 4), lrs=(2e-3, 3e-3)))
    random.Random(0).shuffle(grid)
    if len(grid) < n:
        raise SystemExit(f"--trials={n} is invalid: the benchmark grid has {len(grid)} configs")
    return grid[:n]


def _bulk_insert(uri: str, parent_id: str, experiment_id: str, rest: list[sweepgen.Plan]) -> None:
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from coe_sweep.tracking import names as N

    store = SqlAlchemyStore(uri, tempfile.mkdtemp(prefix="coe-bench-artifacts-"))
    now_ms = int(time.time() * 1000)
    with store.ManagedSessionMaker() as session:
        for i, p in enumerate(rest):
            result = sweepgen.result_for(p)
            run_id = uuid.uuid4().hex
            params = N.params_to_str({k: v for k, v in p.flat_params().items()})
            tags = {N.TAG_PARENT: parent_id, N.TAG_KIND: N.KIND_TRIAL, N.TAG_CONFIG_HASH: p.config_hash,
                    N.TAG_SPEC_HASH: f"spec-{SWEEP}", N.TAG_SWEEP_NAME: SWEEP, N.TAG_SIMULATED: "true",
                    N.TAG_STATUS: result.status, N.TAG_REASON: result.reason or "", N.TAG_DEVICE: result.device,
                    N.TAG_BUDGET_LABEL: p.budget_label, N.TAG_FAMILY: N.family_of(p.flat_params()),
                    N.TAG_RUN_NAME: f"{p.budget_label}-{p.config_hash[:8]}"}
            start = now_ms + i
            session.add(SqlRun(run_uuid=run_id, name=tags[N.TAG_RUN_NAME], source_type="LOCAL", source_name="",
                               entry_point_name="", user_id="bench", source_version="", lifecycle_stage="active",
                               artifact_uri=f"{store.artifact_root_uri}/{run_id}/artifacts",
                               experiment_id=int(experiment_id), start_time=start, end_time=start + 1,
                               status="FINISHED" if result.status == "ok" else "FAILED"))
            session.add_all([SqlTag(key=k, value=v, run_uuid=run_id) for k, v in tags.items()])
            session.add_all([SqlParam(key=k, value=v, run_uuid=run_id) for k, v in params.items()])
            finals = {key: getattr(result, attr) for attr, key in N.RESULT_TO_METRIC.items()
                      if getattr(result, attr, None) is not None}
            points = [(k, float(v), 0) for k, v in finals.items()]
            points += [("val_loss", float(v), s) for s, v in result.val_curve]
            points += [("train_loss", float(v), s) for s, v in result.train_curve]
            latest: dict[str, tuple[float, int]] = {}
            for key, value, step in points:
                session.add(SqlMetric(key=key, value=value, timestamp=start, step=step, is_nan=value != value,
                                      run_uuid=run_id))
                if key not in latest or step >= latest[key][1]:
                    latest[key] = (value, step)
            session.add_all([SqlLatestMetric(key=k, value=v, timestamp=start, step=s, is_nan=v != v, run_uuid=run_id)
                             for k, (v, s) in latest.items()])
            if i % 1000 == 999:
                session.flush()
                log.info("inserted %d/%d", i + 1, len(rest))


def seed(n: int) -> Path:
    key = hashlib.sha256(SEED_VERSION.encode() + (REPO / "tests/dashboard/sweepgen.py").read_bytes()
                         + str(n).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / "coe-sweep-bench" / f"{SWEEP}-{n}-{key}"
    db = root / "mlflow.db"
    if db.exists():
        return db
    from coe_sweep.tracking import SweepTracker, TrackingStore

    building = root.with_name(root.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    uri = f"sqlite:///{building / 'mlflow.db'}"
    t0 = time.perf_counter()
    all_plans = plans(n)
    tracker = SweepTracker(uri, SWEEP, f"name: {SWEEP}\n", f"spec-{SWEEP}", journal_dir=str(building / "journal"),
                           simulated=True)
    parent_id = tracker.start()
    for p in all_plans[:WRITER_TRIALS]:
        tracker.log_result(tracker.start_trial(p.config_hash, p.flat_params()), sweepgen.result_for(p))
    _bulk_insert(uri, parent_id, str(tracker.experiment_id), all_plans[WRITER_TRIALS:])
    tracker.finished_trials()  # what a relaunch does: lists the children, keeps their counts on the parent run
    tracker.finish("FINISHED")
    frame = TrackingStore(uri).trials_frame(SWEEP).sort_values("start_time")
    assert len(frame) == n, f"seeded {len(frame)} trials, expected {n}"
    ok = frame[frame["status"] == "ok"]
    by_writer, by_bulk = ok.iloc[0], ok.iloc[-1]  # the writer's trials were created first
    assert set(by_writer.dropna().index) == set(by_bulk.dropna().index), \
        set(by_writer.dropna().index) ^ set(by_bulk.dropna().index)
    log.info("seeded %d trials in %.0f s (%s)", len(frame), time.perf_counter() - t0, building)
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    return db


def without_counts(db: Path) -> Path:
    """A copy of the store whose parent run lacks the trial counts (as written before they existed)."""
    from coe_sweep.tracking import TrackingStore
    from coe_sweep.tracking.connection import make_client
    from coe_sweep.tracking.names import TAG_TRIAL_COUNTS

    copy = db.with_name("mlflow-without-counts.db")
    shutil.copyfile(db, copy)
    uri = f"sqlite:///{copy}"
    make_client(uri).delete_tag(TrackingStore(uri).sweep(SWEEP).id, TAG_TRIAL_COUNTS)
    return copy


def first_answer(uri: str, settings_cls) -> float:  # noqa: ANN001
    """GET /api/sweeps on a fresh app over `uri` (nothing cached), in ms."""
    from fastapi.testclient import TestClient

    from coe_sweep.tracking import TrackingStore
    from dashboard import create_app

    with TestClient(create_app(TrackingStore(uri), settings_cls(tracking_uri=uri, cache_ttl_s=3600))) as client:
        return timed(client, "/api/sweeps")


def timed(client, url: str) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    response = client.get(url)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url} -> {response.status_code}: {response.text[:300]}")
    return elapsed_ms


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)

    db = seed(args.trials)
    from fastapi.testclient import TestClient

    from coe_sweep.tracking import TrackingStore
    from dashboard import create_app
    from dashboard.settings import Settings

    uri = f"sqlite:///{db}"
    settings = Settings(tracking_uri=uri, cache_ttl_s=3600)
    base = f"/api/sweeps/{SWEEP}"
    endpoints = {
        "frontier": f"{base}/frontier",
        "pareto": f"{base}/pareto?objectives=final_val_loss:min,peak_memory_bytes:min",
    }
    rows: list[tuple[str, str, float, float]] = []
    old_store = without_counts(db)
    lists = [(first_answer(uri, Settings), first_answer(f"sqlite:///{old_store}", Settings)) for _ in range(3)]
    now_ms = statistics.median(a for a, _ in lists)
    before_ms = statistics.median(b for _, b in lists)
    rows.append(("list", "first answer: counts on the parent run x3", now_ms, max(a for a, _ in lists)))
    rows.append(("list", "first answer: counted from children x3", before_ms, max(b for _, b in lists)))
    old_store.unlink()
    for name, url in endpoints.items():
        with TestClient(create_app(TrackingStore(uri), settings)) as client:
            cold = timed(client, url)  # full read of the sweep + compute
            warm = [timed(client, url) for _ in range(args.repeats)]
        rows.append((name, "cold (fresh app: read sweep + compute)", cold, cold))
        rows.append((name, f"warm x{args.repeats}", statistics.median(warm), pct(warm, 95)))

    with TestClient(create_app(TrackingStore(uri), settings)) as client:
        timed(client, f"{base}")  # load once
        firsts = {
            "frontier": [timed(client, f"{base}/frontier?x={x}") for x in ("params_active", "params_total", "tokens")],
            "pareto": [timed(client, f"{base}/pareto?objectives={o}") for o in
                       ("val_loss,peak_memory", "val_loss,params_total", "val_loss:min,train_flops:min,params_total:min",
                        "val_loss,estimated_memory", "val_loss,wall_s")],
        }
    for name, values in firsts.items():
        rows.append((name, f"first (new params, loaded sweep) x{len(values)}", statistics.median(values), max(values)))

    print(f"\ndashboard latency, {args.trials} trials, MLflow sqlite store {db}")
    print(f"{'endpoint':<10} {'case':<44} {'p50 ms':>9} {'p95/max ms':>11} {'p50 / 100 ms':>13}")
    for name, case, p50, p95 in rows:
        print(f"{name:<10} {case:<44} {p50:>9.1f} {p95:>11.1f} {p50 / TARGET_MS:>13.3f}")
    print(f"first answer (GET /api/sweeps, fresh app): {now_ms:.0f} ms with the counts on the parent run vs "
          f"{before_ms:.0f} ms counting the children: ratio {before_ms / now_ms:.1f}x; "
          f"{now_ms / FIRST_ANSWER_TARGET_MS:.3f} of the {FIRST_ANSWER_TARGET_MS / 1000:.0f} s target")


if __name__ == "__main__":
    main()
