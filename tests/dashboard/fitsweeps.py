"""A small real MLflow store for the fit-display tests (API, CLI, report, browser), shared by their modules.

Three sweeps written through the real tracking writer (SweepTracker) with results from the simulated law
(runners.simulated, as `launch --simulate` produces them); only the Ray driver is skipped, so the store
builds in ~20 s:
- FLAGGED: every level samples only sizes below its optimum, so each vertex lies outside the sampled range
  and the N* exponent's interval includes 0 (flagged fits, no star);
- THIN: 2 levels x 2 sizes: nothing to fit (the page says what is missing);
- ARMS: MoE (K=4) and CoE (C=2, K=2) at 4 sizes x 3 levels x 2 seeds, written as a simulated sweep (the
  SIMULATED badge; fits at every level and an arm comparison).
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import sweepgen

REPO = Path(__file__).resolve().parents[2]
FLAGGED, THIN, ARMS = "fits-flagged", "fits-thin", "fits-arms-sim"
LEVELS = (("1e12", 1e12), ("3e12", 3e12), ("1e13", 1e13))


def _write(uri: str, name: str, plans: Sequence[sweepgen.Plan], journal: Path, *, simulated: bool) -> None:
    from coe_sweep.tracking import SweepTracker

    tracker = SweepTracker(uri, name, f"name: {name}\n", f"spec-{name}", journal_dir=journal, simulated=simulated)
    tracker.start()
    for p in plans:
        run_id = tracker.start_trial(p.config_hash, p.flat_params(), seed=p.seed)
        tracker.log_result(run_id, sweepgen.result_for(p))
    tracker.finish("FINISHED")


def arm_plans() -> list[sweepgen.Plan]:
    from coe_sweep.model.config import ModelConfig

    plans = []
    for (label, flops), d, (iterations, top_k), seed in itertools.product(LEVELS, (16, 32, 64, 96), ((1, 4), (2, 2)),
                                                                          range(2)):
        model = ModelConfig(d_model=d, n_heads=4, d_expert=d, n_experts=8, top_k=top_k, iterations=iterations,
                            n_layers=2, max_seq_len=sweepgen.SEQ_LEN)
        plans.append(sweepgen.plan(model, flops, label, seed=seed))
    return plans


def build(root: Path) -> str:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    _write(uri, FLAGGED, list(sweepgen.grid(budgets=LEVELS, d_models=(8, 16, 24, 32), iterations=(1,))),
           root / "j1", simulated=False)
    _write(uri, THIN, list(sweepgen.grid(budgets=LEVELS[:2], d_models=(32, 64), iterations=(1,))), root / "j2",
           simulated=False)
    _write(uri, ARMS, arm_plans(), root / "j3", simulated=True)
    return uri


def _key() -> str:
    import mlflow

    digest = hashlib.sha256(mlflow.__version__.encode())
    for path in [Path(__file__), Path(sweepgen.__file__), REPO / "runners" / "simulated.py",
                 *sorted((REPO / "coe_sweep" / "tracking").glob("*.py"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def fits_uri(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The store, built once into pytest's cache (keyed by the sources that shape it) and copied per session:
    each test module that imports this fixture gets its own instance, all from one build."""
    cache = getattr(request.config, "cache", None)
    if cache is None:  # -p no:cacheprovider
        return build(tmp_path_factory.mktemp("fits-store"))
    cached = Path(cache.mkdir("coe-sweep-fits")) / _key()
    if not (cached / "mlflow.db").exists():
        building = cached.with_name(cached.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        build(building)
        shutil.rmtree(cached, ignore_errors=True)
        building.rename(cached)
    target = tmp_path_factory.mktemp("fits-store")
    shutil.copy(cached / "mlflow.db", target / "mlflow.db")
    return f"sqlite:///{target / 'mlflow.db'}"
