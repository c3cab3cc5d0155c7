"""Fit `coe-sweep plan`'s wall-time model (coe_sweep/search/sweep_plan.py) to the trials of a real sweep.

The model, per trial: wall_s = (train_flops + eval_flops) / rate
                               + steps x (STEP_OVERHEAD_S + n_layers x (PER_LAYER_S + iterations x PER_LAYER_ITER_S))
                               (+ TRIAL_OVERHEAD_S, outside a trial's own wall_s).
It is linear in (1 / rate, STEP_OVERHEAD_S, PER_LAYER_S, PER_LAYER_ITER_S): this script reads every
finished trial of SWEEP from its MLflow store (RunResult.wall_s, tokens, train FLOPs, the model and
train params), solves the non-negative least squares on the trials' wall seconds (scipy nnls), and
prints the constants, each trial's relative error and the error of the sum, next to the same figures
for the constants the planner has now.

    python benchmarks/fit_plan_time.py --tracking-uri sqlite:///mlflow.db --sweep iso_flops
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from scipy.optimize import nnls

from coe_sweep.search import sweep_plan
from coe_sweep.tracking.store import TrackingStore


def design(frame: object) -> tuple[np.ndarray, np.ndarray]:
    """Columns (FLOPs, steps, steps x layers, steps x layers x iterations) and the wall seconds."""
    rows, wall = [], []
    for _, t in frame.iterrows():  # type: ignore[attr-defined]
        batch, seq = int(t["train.batch_size"]), int(t["train.seq_len"])
        steps = int(t["tokens"]) // (batch * seq)
        evaluations = steps // int(t["train.eval_interval"]) + 1
        eval_batches = t.get("train.eval_batches")
        val_tokens = (int(t["data.val_tokens"]) if eval_batches in (None, "None", "") or eval_batches != eval_batches
                      else int(eval_batches) * batch * seq)
        flops = float(t["train_flops"]) + evaluations * val_tokens * float(t["train_flops_per_token"]) / 3
        layers, iterations = int(t["model.n_layers"]), int(t["model.iterations"])
        rows.append([flops, steps, steps * layers, steps * layers * iterations])
        wall.append(float(t["wall_s"]))
    return np.asarray(rows), np.asarray(wall)


def report(name: str, x: np.ndarray, wall: np.ndarray, coef: np.ndarray) -> None:
    predicted = x @ coef
    errors = np.abs(predicted - wall) / wall
    print(f"{name}: rate {1 / coef[0]:.3g} FLOPs/s, step {coef[1] * 1e3:.2f} ms + {coef[2] * 1e3:.2f} ms/layer + "
          f"{coef[3] * 1e3:.2f} ms/layer/iteration; per trial |error| median {statistics.median(errors):.0%}, "
          f"max {errors.max():.0%}; sum {predicted.sum():.0f} s vs measured {wall.sum():.0f} s "
          f"({predicted.sum() / wall.sum() - 1:+.1%})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--sweep", required=True)
    args = p.parse_args()
    frame = TrackingStore(args.tracking_uri).trials_frame(args.sweep)
    frame = frame[frame["status"] == "ok"]
    if frame.empty:
        print(f"no finished trials in sweep {args.sweep!r} yet")
        return
    x, wall = design(frame)
    print(f"{len(wall)} finished trials of {args.sweep!r}, {wall.sum():.0f} trial-seconds")
    current = np.array([1 / sweep_plan.CPU_TRAIN_FLOPS_PER_S_PER_CPU, sweep_plan.STEP_OVERHEAD_S,
                        sweep_plan.STEP_OVERHEAD_PER_LAYER_S, sweep_plan.STEP_OVERHEAD_PER_LAYER_ITER_S])
    report("planner now   ", x, wall, current)
    scale = x.max(axis=0)  # nnls on comparable columns
    coef, _ = nnls(x / scale, wall)
    report("least squares ", x, wall, coef / scale)
    fixed_rate = current[0] * x[:, 0]
    coef_overhead, _ = nnls(x[:, 1:] / scale[1:], wall - fixed_rate)
    report("rate held     ", x, wall, np.concatenate([[current[0]], coef_overhead / scale[1:]]))


if __name__ == "__main__":
    main()
