"""Fit `coe-sweep plan`'s wall-time model (coe_sweep/search/sweep_plan.py): to measured training steps of a
spec's candidate configs (`--measure SPEC`), or to the trials of a real sweep (`--sweep`).

The model, per trial: wall_s = (train_flops + eval_flops) / rate
                               + steps x (STEP_OVERHEAD_S + n_layers x (PER_LAYER_S + iterations x PER_LAYER_ITER_S))
                               (+ TRIAL_OVERHEAD_S, outside a trial's own wall_s).
It is linear in (1 / rate, STEP_OVERHEAD_S, PER_LAYER_S, PER_LAYER_ITER_S); both modes solve the
non-negative least squares (scipy nnls) and print the constants, each row's relative error and the
error of the sum, next to the same figures for the constants the planner has now.

--measure SPEC: every distinct model of the spec's feasible candidates (all budget levels) trains
  steps with the runner's own step (runners/step.TrainStep, 1 torch thread, the trial's malloc
  settings); a row is one config's fastest step of --repeats in process CPU time (with one thread,
  the time the step had a core: a shared machine's queue does not enter the fit, its cache pressure
  still does). Rows: (FLOPs per step, 1, layers, layers x
  iterations) -> step seconds.
--sweep NAME: every finished trial of a sweep in its MLflow store: RunResult.wall_s against its
  training and evaluation FLOPs and steps. These trials ran 2 at once and share the machine with
  whatever else ran then, so the fit includes that load.

    python benchmarks/fit_plan_time.py --measure search_spaces/iso_flops.yaml
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
    rate = f"{1 / coef[0]:.3g}" if coef[0] > 0 else "inf"
    print(f"{name}: rate {rate} FLOPs/s, step {coef[1] * 1e3:.2f} ms + {coef[2] * 1e3:.2f} ms/layer + "
          f"{coef[3] * 1e3:.2f} ms/layer/iteration; per trial |error| median {statistics.median(errors):.0%}, "
          f"max {errors.max():.0%}; sum {predicted.sum():.0f} s vs measured {wall.sum():.0f} s "
          f"({predicted.sum() / wall.sum() - 1:+.1%})")


def measured_rows(spec_path: str, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """(FLOPs per step, 1, layers, layers x iterations) and the fastest step seconds of each distinct model."""
    import time
    from dataclasses import replace

    import torch

    from coe_sweep.model.lm import CoELM
    from coe_sweep.search.candidates import budgets, plan_trial
    from coe_sweep.spec.load import load_spec

    spec = load_spec(spec_path)
    torch.set_num_threads(1)
    from step_overhead import is_original_code

    if not is_original_code():  # the original code (before issue 14) had no allocator settings
        from runners.device import keep_freed_memory

        keep_freed_memory()
    points, _ = sweep_plan.planned_points(spec)
    models: dict[str, object] = {}
    for budget in budgets(spec):
        for point in points:
            plan = plan_trial(spec, budget, point)
            if plan.feasible and plan.run_spec is not None:
                models.setdefault(repr(plan.run_spec.model), plan)
    rows, step_s = [], []
    for plan in models.values():
        run_spec = plan.run_spec  # type: ignore[attr-defined]
        tc = replace(run_spec.train, device="cpu", threads=1)
        torch.manual_seed(0)
        run = runner_step(CoELM(run_spec.model), tc)
        batch = torch.randint(0, run_spec.model.vocab_size, (tc.batch_size, tc.seq_len + 1))
        for _ in range(3):
            run(batch)
        times = []
        for _ in range(repeats):
            t0 = time.process_time()  # CPU time: on a shared machine, waiting for a core is not the step's cost
            run(batch)
            times.append(time.process_time() - t0)
        cfg = run_spec.model
        rows.append([plan.train_flops_per_token * tc.batch_size * tc.seq_len,  # type: ignore[attr-defined]
                     1.0, cfg.n_layers, cfg.n_layers * cfg.iterations])
        step_s.append(min(times))
        print(f"  d={cfg.d_model} L={cfg.n_layers} C={cfg.iterations} K={cfg.top_k} N={cfg.n_experts}: "
              f"fastest step {min(times) * 1e3:.1f} ms, median {statistics.median(times) * 1e3:.1f} ms")
    return np.asarray(rows), np.asarray(step_s)


def runner_step(model: object, tc: object) -> object:
    """The runner's step on (B, T+1) batches; on the original code a replica of its step (step_overhead.py)."""
    from step_overhead import _legacy_trial_step, is_original_code

    if is_original_code():
        return _legacy_trial_step(model, tc)  # type: ignore[arg-type]
    from runners.device import resolve_device
    from runners.step import TrainStep

    return TrainStep(model, tc, total_steps=10_000, device=resolve_device(tc)).run  # type: ignore[arg-type]


def fit(name: str, x: np.ndarray, y: np.ndarray) -> None:
    current = np.array([1 / sweep_plan.CPU_TRAIN_FLOPS_PER_S_PER_CPU, sweep_plan.STEP_OVERHEAD_S,
                        sweep_plan.STEP_OVERHEAD_PER_LAYER_S, sweep_plan.STEP_OVERHEAD_PER_LAYER_ITER_S])
    print(f"{len(y)} {name}, {y.sum():.1f} s in all")
    report("planner now   ", x, y, current)
    scale = x.max(axis=0)  # nnls on comparable columns
    coef, _ = nnls(x / scale, y)
    report("least squares ", x, y, coef / scale)
    coef_overhead, _ = nnls(x[:, 1:] / scale[1:], y - current[0] * x[:, 0])
    report("rate held     ", x, y, np.concatenate([[current[0]], coef_overhead / scale[1:]]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--measure", metavar="SPEC", help="measure the runner's step on the spec's candidate models")
    p.add_argument("--repeats", type=int, default=12, help="--measure: timed steps per config")
    p.add_argument("--tracking-uri")
    p.add_argument("--sweep")
    args = p.parse_args()
    if args.measure:
        x, step_s = measured_rows(args.measure, args.repeats)
        fit("measured configs (fastest step each)", x, step_s)
        return
    if not (args.tracking_uri and args.sweep):
        p.error("give --measure SPEC, or --tracking-uri and --sweep")
    frame = TrackingStore(args.tracking_uri).trials_frame(args.sweep)
    frame = frame[frame["status"] == "ok"]
    if frame.empty:
        print(f"no finished trials in sweep {args.sweep!r} yet")
        return
    x, wall = design(frame)
    fit(f"finished trials of {args.sweep!r} (wall_s)", x, wall)


if __name__ == "__main__":
    main()
