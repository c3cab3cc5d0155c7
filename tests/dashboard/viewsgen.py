"""A variant sweep with named arms and real routing statistics, for the researcher-view tests.

Three named arms of the coe_vs_moe space (moe_2k, coe_2_k, coe_shared_router) x two budgets x two seeds,
plans and losses from sweepgen (analytic accounting + the simulated law), each trial tagged with its
arm like the orchestrator does, and its `routing` summary measured by runners.routing on one forward
pass of the real (untrained) CoE/MoE model with that config: real router statistics, no training.
Written through the real tracking writer into a real MLflow sqlite store.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import sweepgen
import torch

from coe_sweep.model.config import ModelConfig
from coe_sweep.model.lm import CoELM
from coe_sweep.tracking import SweepTracker
from coe_sweep.tracking.names import TAG_ARM
from runners.routing import summarise_routing

REPO = Path(__file__).resolve().parents[2]
VARIANT_SWEEP = "variant-arms"
ARMS = {"moe_2k": {"iterations": 1, "top_k": 4},
        "coe_2_k": {"iterations": 2, "top_k": 2},
        "coe_shared_router": {"iterations": 2, "top_k": 2, "router_mode": "shared"}}
BUDGETS = (("1e12", 1e12), ("3e12", 3e12))
SEEDS = 2


def plans() -> Iterator[tuple[str, sweepgen.Plan]]:
    base = ModelConfig(d_model=32, n_heads=4, d_expert=32, n_experts=8, n_shared=1, n_layers=2,
                       max_seq_len=sweepgen.SEQ_LEN)
    for label, flops in BUDGETS:
        for arm, fields in ARMS.items():
            for seed in range(SEEDS):
                yield arm, sweepgen.plan(replace(base, **fields), flops, label, seed=seed)


@torch.no_grad()
def measured_routing(model_cfg: ModelConfig, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    model = CoELM(model_cfg).eval()
    tokens = torch.randint(0, model_cfg.vocab_size, (4, sweepgen.SEQ_LEN))
    return summarise_routing(model(tokens, return_stats=True).stats)


def build(uri: str, journal_dir: str) -> dict[str, str]:
    """Write the sweep; returns {trial_id: run_id}."""
    tracker = SweepTracker(uri, VARIANT_SWEEP, f"name: {VARIANT_SWEEP}\n", f"spec-{VARIANT_SWEEP}",
                           simulated=True, journal_dir=journal_dir)
    tracker.start()
    ids = {}
    routing: dict[tuple[ModelConfig, int], dict[str, float]] = {}  # a config's model is the same at every budget
    for arm, p in plans():
        run_id = tracker.start_trial(p.config_hash, p.flat_params(), {TAG_ARM: arm}, seed=p.seed)
        result = sweepgen.result_for(p)
        key = (p.run_spec.model, p.seed)
        routing[key] = routing.get(key) or measured_routing(*key)
        result.routing = dict(routing[key])
        tracker.log_result(run_id, result)
        ids[p.trial_id] = run_id
    tracker.finish("FINISHED")
    return ids


def cached_db(cache_root: Path, base_key: str) -> Path:
    """The sweep's sqlite file, built once under `cache_root` per key (the session store's key + this module,
    the routing summary and the model sources); callers copy it and never write into it."""
    digest = hashlib.sha256(base_key.encode())
    for path in [Path(__file__), REPO / "runners" / "routing.py", *sorted((REPO / "coe_sweep" / "model").glob("*.py"))]:
        digest.update(path.read_bytes())
    cached = cache_root / digest.hexdigest()[:16]
    if not (cached / "mlflow.db").exists():
        building = cached.with_name(cached.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        build(f"sqlite:///{building / 'mlflow.db'}", str(building / "journal"))
        shutil.rmtree(cached, ignore_errors=True)
        building.rename(cached)
    return cached / "mlflow.db"
