"""Seconds per simulated trial beyond the fixed start-up: `coe-sweep launch --simulate` at sweep scale.

Runs simulated grid sweeps (real Ray, real sqlite MLflow, the simulated runner) of a SMALL and a LARGE
number of trials, each on a fresh local Ray, and reports

    per-trial seconds = (wall(LARGE) - wall(SMALL)) / (LARGE - SMALL)

(the fixed start-up, Ray and MLflow set-up, cancels out), the median over `--repeats` pairs run in
alternation, and the fixed start-up (wall(SMALL) - SMALL x per-trial). Target: <= 0.25 s per trial.
Works on this tree and on trees from before the lifecycle refactor: to measure another checkout on the same
machine in the same session, put it first on PYTHONPATH (Ray's workers inherit it):

    python benchmarks/simulate_speed.py [--small 4] [--large 40] [--repeats 3]
    PYTHONPATH=/path/to/other/checkout python benchmarks/simulate_speed.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

for _key, _value in {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true",
                     "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}.items():
    os.environ.setdefault(_key, _value)


def _spec(tmp: Path, trials: int) -> Path:
    """A grid of `trials` configs (d_model x lr) at one budget: every point feasible, each trial ~30 evals."""
    widths = [16, 32, 48, 64]
    lrs = [round(1e-3 + 1e-4 * i, 6) for i in range(max(1, -(-trials // len(widths))))]
    spec = {
        "name": f"simulate-speed-{trials}",
        "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        "cluster": {"cpus_per_trial": 1, "max_concurrent": 2, "num_cpus": 2, "storage_path": str(tmp / "sweeps")},
        "data": {"source": "builtin:arithmetic", "num_examples": 2000, "val_tokens": 2048},
        "model": {"n_heads": 2, "n_layers": 1, "d_expert": 16, "n_experts": 4, "n_shared": 1},
        "space": {"d_model": {"choice": widths}, "train.lr": {"choice": lrs}},
        "budget": {"flops": [1e11]},
        "search": {"algorithm": "grid", "trials_per_budget": trials},
        "train": {"batch_size": 4, "seq_len": 32, "eval_interval": 100, "warmup_steps": 2},
    }
    path = tmp / f"speed-{trials}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _launch() -> Any:
    try:
        from coe_sweep.sweep.driver import launch
    except ImportError:  # a tree from before the lifecycle refactor
        from coe_sweep.search.orchestrate import launch  # type: ignore[no-redef]
    return launch


def _wall_s(trials: int) -> float:
    from coe_sweep.spec import load_spec

    with tempfile.TemporaryDirectory(prefix="coe-sweep-simspeed-") as name:
        spec = load_spec(_spec(Path(name), trials))
        start = time.perf_counter()
        outcome = _launch()(spec, simulate=True, progress=False)
        wall_s = time.perf_counter() - start
        done = len(outcome.trials)
    if done != trials:
        raise RuntimeError(f"expected {trials} trials, the sweep ran {done}")
    return wall_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=4)
    parser.add_argument("--large", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    per_trial, fixed = [], []
    for _ in range(args.repeats):
        small, large = _wall_s(args.small), _wall_s(args.large)
        slope = (large - small) / (args.large - args.small)
        per_trial.append(slope)
        fixed.append(small - args.small * slope)
        print(f"  {args.small} trials {small:.1f} s, {args.large} trials {large:.1f} s -> {slope:.3f} s/trial")
    import coe_sweep

    print(f"tree: {Path(coe_sweep.__file__).resolve().parents[1]}")
    print(f"seconds per simulated trial (median of {args.repeats}): {statistics.median(per_trial):.3f} "
          f"(target <= 0.25); fixed start-up: {statistics.median(fixed):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
