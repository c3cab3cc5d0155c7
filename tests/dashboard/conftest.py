"""Fixtures: a real MLflow sqlite store holding a synthetic sweep, and the dashboard app over it.

Seeding goes through the real tracking writer (about 0.3 s a trial here), so the seeded database is
built once and kept in pytest's cache directory under a key hashing every source file that shapes
it (this helper, the tracking package, the simulated-loss law, accounting) plus the MLflow version;
each session copies it into its own tmp dir, so tests never write into the cached copy.
"""

from __future__ import annotations

import hashlib
import shutil
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
_SOURCES = [Path(__file__).parent / "sweepgen.py", Path(__file__),
            *sorted((REPO / "coe_sweep" / "tracking").glob("*.py")),
            REPO / "coe_sweep" / "search" / "simulate.py", *sorted((REPO / "coe_sweep" / "accounting").glob("*.py"))]


def _key() -> str:
    digest = hashlib.sha256(mlflow.__version__.encode())
    for path in _SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build(db_dir: Path) -> None:
    uri = f"sqlite:///{db_dir / 'mlflow.db'}"
    sweepgen.seed_sweep(uri, SWEEP, list(sweepgen.grid()), journal_dir=str(db_dir / "journal-a"))
    # a sweep whose only trial is still running: every analysis endpoint must give an empty answer
    sweepgen.seed_sweep(uri, EMPTY_SWEEP, [], journal_dir=str(db_dir / "journal-b"), extra_failures=False,
                        running=1, finish=None)


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
