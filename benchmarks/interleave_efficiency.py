"""Budgets one after another vs interleaved in one Tune experiment: wall time and sweep efficiency of a REAL sweep.

The same small real sweep (tiny MoE models trained on the built-in arithmetic data, 2 slots, 3 budget levels of
3 configs each, trials of ~3-12 s) runs with `cluster.interleave: false` (one Tune experiment per budget, the way
sweeps ran before) and `true` (every budget in one experiment, longest trials first), alternating which goes
first in each repeat, each launch in its own process on its own fresh local Ray, MLflow sqlite and sweep directory. Prints per run:
wall seconds, the sweep's efficiency (busy slot-seconds / (slots x wall)), its efficiency over the trials' own
span (start-up excluded) and the idle slot-seconds; then medians and the ratio interleaved / sequential.

    python benchmarks/interleave_efficiency.py [--repeats 2] [--flops 5e9 1e10 2e10]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

for _key, _value in {"RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true", "HF_DATASETS_OFFLINE": "1",
                     "HF_HUB_OFFLINE": "1"}.items():
    os.environ.setdefault(_key, _value)

MODES = {"sequential": False, "interleaved": True}


@dataclass
class Run:
    mode: str
    wall_s: float
    span_s: float
    busy_slot_s: float
    efficiency: float
    span_efficiency: float
    idle_slot_s: float
    trials: int


def _spec(tmp: Path, flops: list[float], interleave: bool) -> Path:
    spec: dict[str, Any] = {
        "name": "interleave-efficiency",
        "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        "cluster": {"cpus_per_trial": 1, "max_concurrent": 2, "num_cpus": 2, "storage_path": str(tmp / "sweeps"),
                    "interleave": interleave},
        "data": {"source": "builtin:arithmetic", "num_examples": 2000, "val_tokens": 2048,
                 "cache_dir": str(tmp / "data-cache")},
        "model": {"n_heads": 2, "n_layers": 1, "d_expert": 16, "n_experts": 4, "n_shared": 1},
        "space": {"d_model": {"choice": [32, 48, 64]}},
        "budget": {"flops": flops},
        "search": {"algorithm": "grid"},
        "train": {"batch_size": 8, "seq_len": 32, "eval_interval": 200, "warmup_steps": 2, "threads": 1},
    }
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _single(mode: str, flops: list[float]) -> None:
    """One sweep in this process; prints its Run as JSON (a local Ray per process, as the CLI starts it)."""
    from coe_sweep.spec import load_spec
    from coe_sweep.sweep.driver import launch

    with tempfile.TemporaryDirectory(prefix="coe-sweep-interleave-") as name:
        outcome = launch(load_spec(_spec(Path(name), flops, MODES[mode])), progress=False)
    if outcome.exit_code != 0 or outcome.n_failed:
        raise RuntimeError(f"{mode}: the sweep failed: {outcome.stopped_reason}")
    run = Run(mode, outcome.wall_s, outcome.trials_span_s, outcome.busy_slot_s, outcome.efficiency,
              outcome.trials_efficiency, outcome.idle_slot_s, len(outcome.trials))
    print(json.dumps(dataclasses.asdict(run)))


def _run(mode: str, flops: list[float]) -> Run:
    done = subprocess.run([sys.executable, __file__, "--single", mode, "--flops", *map(str, flops)],
                          capture_output=True, text=True, timeout=1800, check=True)
    return Run(**json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--flops", type=float, nargs="+", default=[5e9, 1e10, 2e10])
    parser.add_argument("--single", choices=list(MODES), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        _single(args.single, args.flops)
        return 0
    runs: list[Run] = []
    for repeat in range(args.repeats):
        order = list(MODES) if repeat % 2 == 0 else list(reversed(MODES))
        for mode in order:
            run = _run(mode, args.flops)
            runs.append(run)
            print(f"repeat {repeat + 1} {mode:>11}: {run.trials} trials, wall {run.wall_s:.1f} s, trials' span "
                  f"{run.span_s:.1f} s, busy {run.busy_slot_s:.1f} slot-s, efficiency {run.efficiency:.2f} "
                  f"(span {run.span_efficiency:.2f}), idle {run.idle_slot_s:.1f} slot-s", flush=True)
    med = {mode: {field: statistics.median(getattr(r, field) for r in runs if r.mode == mode)
                  for field in ("wall_s", "span_s", "efficiency", "span_efficiency", "idle_slot_s")}
           for mode in MODES}
    for mode, m in med.items():
        print(f"{mode:>11} (median of {args.repeats}): wall {m['wall_s']:.1f} s, trials' span {m['span_s']:.1f} s, "
              f"efficiency {m['efficiency']:.2f} (span {m['span_efficiency']:.2f}), idle {m['idle_slot_s']:.1f} slot-s")
    walls = [(i.wall_s / s.wall_s, i.span_s / s.span_s) for s, i in
             zip([r for r in runs if r.mode == "sequential"], [r for r in runs if r.mode == "interleaved"],
                 strict=True)]
    print(f"interleaved / sequential wall time per repeat: {', '.join(f'{w:.2f}' for w, _ in walls)}; median "
          f"{statistics.median(w for w, _ in walls):.2f} (trials' span: median "
          f"{statistics.median(s for _, s in walls):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
