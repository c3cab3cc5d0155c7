"""Tracking throughput: writing trials through SweepTracker, and loading a big sweep with TrackingStore.

Prints the per-trial write cost, the full `trials_frame` load of an N-trial sweep (split into the
MLflow search and the frame build), an incremental refresh and `list_sweeps`, as medians.
The store is a sqlite file; it is reused between runs when it already holds the N trials.

    .venv/bin/python benchmarks/tracking_load.py --trials 10000
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from coe_sweep.tracking import SweepTracker, TrackingStore, ops  # noqa: E402
from coe_sweep.tracking.store import frame_from_runs  # noqa: E402
from coe_sweep.trial import RunResult  # noqa: E402

log = logging.getLogger("tracking_load")


def trial_params(i: int) -> dict[str, object]:
    """About 45 flat params, shaped like flat_params(run_spec) of a real trial."""
    params: dict[str, object] = {
        f"model.{k}": v for k, v in {
            "vocab_size": 258, "max_seq_len": 128, "d_model": 64 * (1 + i % 4), "n_layers": 1 + i % 6,
            "n_heads": 4, "n_kv_heads": None, "d_expert": 32 * (1 + i % 3), "n_experts": 8 * (1 + i % 4),
            "n_shared": i % 2, "top_k": 1 + i % 4, "iterations": 1 + i % 3, "router_mode": "independent",
            "inner_residual": True, "outer_residual": False, "renormalize_topk": False, "routed_scaling": 1.0,
            "aux_loss_alpha": 0.001, "dense": False, "rope_theta": 10000.0, "norm_eps": 1e-5,
            "tie_embeddings": False, "init_std": 0.02, "dispatch": "grouped", "attention_impl": "sdpa",
            "uniform_routing": False}.items()}
    params |= {f"train.{k}": v for k, v in {
        "batch_size": 16, "seq_len": 128, "lr": 3e-3 * (1 + i % 5), "min_lr_ratio": 0.1, "warmup_steps": 10,
        "schedule": "constant", "beta1": 0.9, "beta2": 0.95, "weight_decay": 0.01, "grad_clip": 1.0,
        "seed": i, "eval_interval": 50, "eval_batches": None, "device": "auto", "dtype": "auto"}.items()}
    params |= {"data.source": "builtin:arithmetic", "data.tokenizer": "byte", "data.val_tokens": 16384,
               "data.seed": 0, "horizon.tokens": 100_000 + i, "budget_label": f"{10 ** (12 + i % 3):.0e}",
               "budget_flops": float(10 ** (12 + i % 3))}
    return params


def populate(uri: str, n_trials: int, journal_dir: Path) -> float:
    """Write n_trials finished trials; returns the median seconds per trial."""
    tracker = SweepTracker(uri, "bench-10k", "name: bench-10k\n", f"bench{n_trials}", journal_dir=journal_dir,
                           simulated=True)
    tracker.start()
    per_trial_s: list[float] = []
    for i in range(n_trials):
        t0 = time.perf_counter()
        run_id = tracker.start_trial(f"cfg{i:06d}", trial_params(i), {})
        curve = [(s, 5.0 - s / 100) for s in range(0, 250, 50)]
        tracker.log_result(run_id, RunResult(
            status="ok" if i % 50 else "diverged", reason=None if i % 50 else "nan loss", steps=250,
            tokens=100_000 + i, flops=1e12, train_flops_per_token=1e7, params_total=10**6, params_active=5 * 10**5,
            final_train_loss=2.5, final_val_loss=2.6 + (i % 7) / 100, train_curve=curve, val_curve=curve[::2],
            peak_memory_bytes=10**8, estimated_memory_bytes=10**8, tokens_per_s=1e4, wall_s=10.0, simulated=True))
        per_trial_s.append(time.perf_counter() - t0)
        if (i + 1) % 1000 == 0:
            log.info("%d trials written (median %.1f ms/trial)", i + 1, 1000 * statistics.median(per_trial_s))
    tracker.finish()
    return statistics.median(per_trial_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/coe-sweep-bench/tracking"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    args.dir.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{args.dir / f'mlflow-{args.trials}.db'}"
    store = TrackingStore(uri)
    existing = [s for s in store.list_sweeps() if s.name == "bench-10k"] if (args.dir / f"mlflow-{args.trials}.db").exists() else []
    if not existing or existing[0].n_trials != args.trials:
        t0 = time.perf_counter()
        median_write_s = populate(uri, args.trials, args.dir / "journal")
        print(f"write: {args.trials} trials in {time.perf_counter() - t0:.1f} s, "
              f"median {1000 * median_write_s:.1f} ms/trial (start_trial + log_result)")
    sweep = store.sweep("bench-10k")
    parent = store._resolve_sweep(sweep.id)
    search_s, build_s, frame_s = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        runs = ops.search_all(store._client, [parent.info.experiment_id], ops.children_filter(sweep.id))
        t1 = time.perf_counter()
        frame = frame_from_runs(runs)
        t2 = time.perf_counter()
        search_s.append(t1 - t0)
        build_s.append(t2 - t1)
        t0 = time.perf_counter()
        frame = store.trials_frame(sweep.id)
        frame_s.append(time.perf_counter() - t0)
    watermark = int(frame["end_time"].max()) - 1
    incr_s = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        recent = store.trials_frame(sweep.id, updated_after_ms=watermark)
        incr_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    store.list_sweeps()
    list_s = time.perf_counter() - t0
    print(f"trials_frame full load, {len(frame)} rows x {frame.shape[1]} columns: median {statistics.median(frame_s):.2f} s "
          f"(MLflow search_runs {statistics.median(search_s):.2f} s + frame build {statistics.median(build_s):.2f} s)")
    print(f"trials_frame incremental ({len(recent)} rows updated): median {1000 * statistics.median(incr_s):.0f} ms")
    print(f"list_sweeps: {list_s:.2f} s")


if __name__ == "__main__":
    main()
