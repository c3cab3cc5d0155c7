"""Seconds per simulated trial beyond the fixed start-up: `coe-sweep launch --simulate` at sweep scale.

Runs simulated grid sweeps (real local Ray, real sqlite MLflow, the simulated runner) of a SMALL and a LARGE
number of trials and reports

    per-trial seconds = (wall(LARGE) - wall(SMALL)) / (LARGE - SMALL)

(the fixed start-up, Ray and MLflow set-up, cancels out) and the fixed start-up
(wall(SMALL) - SMALL x per-trial), medians over `--repeats`. Target: <= 0.25 s per trial.

With `--peer DIR` (another checkout of coe-sweep, e.g. the commit before a change) every repeat measures
both trees back to back, each sweep in its own process with that tree first on PYTHONPATH (Ray's workers
inherit it), and prints the ratio peer / this tree per repeat and its median: on a shared machine only
ratios measured side by side mean something.

`--peer-rev REV` exports that git revision of this repository (`git archive`) to a temp dir and uses it as the
peer, e.g. `--peer-rev main` for the code before a change.

    python benchmarks/simulate_speed.py [--small 4] [--large 160] [--peer-large 40] [--repeats 3]
                                        [--peer DIR | --peer-rev REV]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

THIS_TREE = Path(__file__).resolve().parents[1]
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true",
       "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def _spec(tmp: Path, trials: int) -> Path:
    """A grid of `trials` configs (d_model x lr) at one budget: every point feasible."""
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


def _single(trials: int) -> None:
    """One sweep in this process (the tree first on sys.path); prints {"wall_s", "trials"} as JSON."""
    try:
        from coe_sweep.sweep.driver import launch
    except ImportError:  # a tree from before the lifecycle refactor
        from coe_sweep.search.orchestrate import launch  # type: ignore[no-redef]
    from coe_sweep.spec import load_spec

    with tempfile.TemporaryDirectory(prefix="coe-sweep-simspeed-") as name:
        spec = load_spec(_spec(Path(name), trials))
        start = time.perf_counter()
        outcome = launch(spec, simulate=True, progress=False)
        wall_s = time.perf_counter() - start
    print(json.dumps({"wall_s": wall_s, "trials": len(outcome.trials)}))


def _wall_s(tree: Path, trials: int) -> float:
    env = {**os.environ, **ENV, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, __file__, "--single", str(trials)], env=env, cwd=tree,
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: the {trials}-trial sweep exited {done.returncode}:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["trials"] != trials:
        raise RuntimeError(f"{tree}: expected {trials} trials, the sweep ran {result['trials']}")
    return float(result["wall_s"])


def _per_trial(tree: Path, small: int, large: int) -> tuple[float, float]:
    """(seconds per trial, fixed start-up seconds) of one small/large pair."""
    small_s, large_s = _wall_s(tree, small), _wall_s(tree, large)
    slope = (large_s - small_s) / (large - small)
    return slope, small_s - small * slope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=4)
    parser.add_argument("--large", type=int, default=160, help="trials of the large sweep of this tree")
    parser.add_argument("--peer-large", type=int, default=40, help="trials of the peer's large sweep (a slow peer "
                        "needs fewer to make its per-trial term stand out of the start-up noise)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer", type=Path, default=None, help="another checkout to measure side by side")
    parser.add_argument("--peer-rev", default=None, help="a git revision of this repository to use as the peer")
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single is not None:
        _single(args.single)
        return 0
    with tempfile.TemporaryDirectory(prefix="coe-sweep-peer-") as peer_dir:
        if args.peer_rev:
            args.peer = _export(args.peer_rev, Path(peer_dir))
        return _measure(args)


def _export(rev: str, into: Path) -> Path:
    """`rev` of this repository as a plain tree under `into` (git archive | tar -x)."""
    archive = subprocess.run(["git", "-C", str(THIS_TREE), "archive", "--format=tar", rev], capture_output=True,
                             check=True, timeout=120)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True, timeout=120)
    return into


def _measure(args: argparse.Namespace) -> int:
    trees = {"this tree": THIS_TREE, **({"peer": args.peer.resolve()} if args.peer else {})}
    per_trial: dict[str, list[float]] = {name: [] for name in trees}
    fixed: dict[str, list[float]] = {name: [] for name in trees}
    large = {"this tree": args.large, "peer": args.peer_large}
    for repeat in range(args.repeats):
        for name, tree in trees.items():
            slope, start_s = _per_trial(tree, args.small, large[name])
            per_trial[name].append(slope)
            fixed[name].append(start_s)
            print(f"repeat {repeat + 1}, {name}: {slope:.3f} s/trial, fixed start-up {start_s:.1f} s", flush=True)
    for name, tree in trees.items():
        print(f"{name} ({tree}): seconds per simulated trial, median of {args.repeats}: "
              f"{statistics.median(per_trial[name]):.3f} (target <= 0.25); fixed start-up "
              f"{statistics.median(fixed[name]):.1f} s")
    if args.peer:
        ratios = [p / t for p, t in zip(per_trial["peer"], per_trial["this tree"], strict=True)]
        print(f"per-trial seconds, peer / this tree: {', '.join(f'{r:.2f}' for r in ratios)}; median "
              f"{statistics.median(ratios):.2f}; ratio of the medians "
              f"{statistics.median(per_trial['peer']) / statistics.median(per_trial['this tree']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
