"""Fixtures: a real MLflow sqlite store filled by a real simulated sweep, and the dashboard app over it.

The sweep is `coe-sweep launch <spec> --simulate` (Ray Tune + the orchestrator + the tracking writer;
losses from runners.simulated), 3 budgets x 7 widths x {MoE, CoE} = 42 trials, plus a
diverged, a failed and a still-running trial appended through the same writer, and a second sweep
whose only trial is running, and a seeded sweep of three arms (MoE K=4, CoE C=2 K=2, CoE C=3 K=1) at three
budgets with 3 seeds each (written through the same tracking writer) for the arm comparison. Building it takes a few minutes here (Ray start-up, 2 shared cores), so
the database is kept in pytest's cache directory under a key hashing every source file that shapes
it plus the MLflow version; each session copies it into its own tmp dir (tests never write into the
cached copy).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sweepgen  # noqa: E402

from coe_sweep.tracking import TrackingStore  # noqa: E402
from dashboard import create_app  # noqa: E402
from dashboard.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SWEEP = "synthetic"
EMPTY_SWEEP = "empty-sweep"
ARMS_SWEEP = "arms-seeded"
SPEC = """\
name: synthetic
description: dashboard test sweep (simulated)
tracking: {{uri: "{uri}"}}
cluster: {{cpus_per_trial: 1, max_concurrent: 2, storage_path: "{storage}"}}
data: {{source: "builtin:arithmetic", num_examples: 2000, val_tokens: 2048}}
model: {{n_heads: 4, n_layers: 2, d_expert: 64, n_experts: 8, top_k: 2, n_shared: 1, max_seq_len: 64}}
space:
  d_model: {{choice: [16, 24, 32, 48, 64, 96, 128]}}
  iterations: {{choice: [1, 2]}}
budget: {{flops: [1e12, 3e12, 1e13]}}
search: {{algorithm: grid, seed: 0}}
train: {{batch_size: 8, seq_len: 64, lr: 3.0e-3, eval_interval: 200, warmup_steps: 2, threads: 1}}
"""
_SOURCES = [Path(__file__).parent / "sweepgen.py", Path(__file__),
            *sorted((REPO / "coe_sweep" / "tracking").glob("*.py")), *sorted((REPO / "coe_sweep" / "search").glob("*.py")),
            *sorted((REPO / "coe_sweep" / "spec").glob("*.py")), REPO / "runners" / "trainable.py",
            *sorted((REPO / "coe_sweep" / "accounting").glob("*.py"))]


def _key() -> str:
    digest = hashlib.sha256(mlflow.__version__.encode())
    for path in _SOURCES:
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build(db_dir: Path) -> None:
    from coe_sweep.spec import load_spec
    from coe_sweep.tracking import SweepTracker

    uri = f"sqlite:///{db_dir / 'mlflow.db'}"
    spec_path = db_dir / "synthetic.yaml"
    spec_path.write_text(SPEC.format(uri=uri, storage=db_dir / "sweeps"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    launched = subprocess.run([sys.executable, "-m", "coe_sweep.cli", "launch", str(spec_path), "--simulate",
                               "--no-progress"], env=env, capture_output=True, text=True, timeout=1200)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    spec = load_spec(spec_path)
    tracker = SweepTracker(uri, spec.name, spec.to_yaml(), spec.spec_hash(), simulated=True,
                           journal_dir=str(db_dir / "journal-a"))
    tracker.start()
    base = next(sweepgen.grid(budgets=(("1e12", 1e12),), d_models=(32,), iterations=(1,)))
    sweepgen.append_extras(tracker, base)
    tracker.finish("FINISHED")
    # a sweep whose only trial is still running: every analysis endpoint must give an empty answer
    sweepgen.seed_sweep(uri, EMPTY_SWEEP, [], journal_dir=str(db_dir / "journal-b"), extra_failures=False,
                        running=1, finish=None)
    sweepgen.seed_sweep(uri, ARMS_SWEEP, list(sweepgen.seeded_arms()), journal_dir=str(db_dir / "journal-c"),
                        extra_failures=False, running=0)


@pytest.fixture(scope="session")
def store_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cached = Path(request.config.cache.mkdir("coe-sweep-dashboard")) / _key()
    if not (cached / "mlflow.db").exists():
        building = cached.with_name(cached.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        _build(building)
        shutil.rmtree(cached, ignore_errors=True)
        building.rename(cached)
    target = tmp_path_factory.mktemp("store")
    shutil.copy(cached / "mlflow.db", target / "mlflow.db")
    return target


@pytest.fixture(scope="session")
def tracking_uri(store_dir: Path) -> str:
    return f"sqlite:///{store_dir / 'mlflow.db'}"


@pytest.fixture(scope="session")
def settings(tracking_uri: str) -> Settings:
    return Settings(tracking_uri=tracking_uri, cache_ttl_s=60.0)


@pytest.fixture(scope="session")
def app(tracking_uri: str, settings: Settings):  # noqa: ANN201
    return create_app(TrackingStore(tracking_uri), settings)


@pytest.fixture(scope="session")
def client(app) -> Iterator[TestClient]:  # noqa: ANN001
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def frame(tracking_uri: str):  # noqa: ANN201
    """The sweep's trials frame as the tracking store returns it (the reference for API answers)."""
    return TrackingStore(tracking_uri).trials_frame(SWEEP)
