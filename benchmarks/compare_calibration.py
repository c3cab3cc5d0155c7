"""Calibration of the arm comparison on seeded simulated sweeps whose truth is known; prints the rates.

    .venv/bin/python benchmarks/compare_calibration.py [--reps 500] [--boot 1000] [--seed 0]

No Ray, no MLflow, no training: tests/analysis/simulated.py plans MoE(K=4) and CoE(C=2, K=2) at 1e12,
3e12 and 1e13 FLOPs with the real planner, takes the simulate law's noise-free loss as the truth and
draws fresh seed noise per repetition; every repetition runs the full `compare_arms`. Scenarios:

  default    law defaults (own noise 0.01 per trial), 3 seeds, plus an A/A copy of the baseline
             (same config, own noise: true difference 0, multiplier 1)
  paired     own noise 0.005 and seed-shared noise 0.01 (batch order): pairing cancels the shared part;
             CoE's 1e12 effect (0.030 nats) is above the minimum detectable difference
  widths     4 widths per arm (d_model 32-96): the best config is selected per arm and level
  methods    why a t interval (not a percentile bootstrap) for a mean over few seeds, and what the
             small-sample widening of the multiplier bootstrap buys

Rates are over (repetition x level) comparisons; +- is one binomial standard error.

Measured (defaults: 500 repetitions, 1000 bootstrap draws, 3 seeds; 2 shared CPU cores, ~17 min):
  default  A/A no detectable difference 94.5%, A/A multiplier CI holds 1 96.6%,
           difference CI coverage 95.3%, multiplier CI coverage 96.5%          (n = 1500 each)
  paired   A/A 95.5%, difference coverage 95.2%, multiplier coverage 99.9% (conservative: each arm's
           bootstrap redraws the seed-shared noise that the real pairing cancels), effect above the
           MDD detected 94.0% (n = 500; the t-test's power predicts 92.8%)
  widths   A/A 95.9%, difference coverage 96.4% (best of 4 widths per arm and level)
  methods  mean over n seeds: t interval 94.5-95.3% at n = 2..30; percentile bootstrap 50.9% (n=2),
           74.7% (3), 83.7% (5), 89.1% (10), 94.0% (30). Multiplier: widened 96.6%, plain 91.6%.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "analysis"))

import simulated as S  # noqa: E402  (tests/analysis/simulated.py: planned arms + the law's truth)

from runners.simulated import SimulationLaw  # noqa: E402

ARMS = {"moe_2k": S.MOE_2K, "coe_2_k": S.COE_2_K}


def rate(flags: list[bool]) -> str:
    if not flags:
        return "   n/a"
    p = float(np.mean(flags))
    return f"{p:6.1%} +- {math.sqrt(p * (1 - p) / len(flags)):.1%} (n={len(flags)})"


def scenario(name: str, law: SimulationLaw, args: argparse.Namespace, rng: np.random.Generator,
             **kwargs: object) -> None:
    start = time.perf_counter()
    d = S.design(ARMS, law, copies={"moe_copy": "moe_2k"}, **kwargs)  # type: ignore[arg-type]
    tally = S.run_scenario(d, baseline="moe_2k", effect_arm="coe_2_k", null_arm="moe_copy", seeds=args.seeds,
                           reps=args.reps, n_boot=args.boot, rng=rng, single_config="d_models" not in kwargs)
    elapsed = time.perf_counter() - start
    print(f"\n[{name}] {args.reps} repetitions, {args.seeds} seeds, {elapsed:.0f} s "
          f"({elapsed / args.reps * 1000:.0f} ms per compare_arms)")
    print(f"  A/A: verdict 'no detectable difference'      {rate(tally.no_difference)}   (target >= 90%)")
    print(f"  A/A: multiplier CI holds 1                    {rate(tally.null_mult_covered)}")
    print(f"  effect: difference CI holds the truth         {rate(tally.diff_covered)}   (target >= 85%)")
    print(f"  effect: multiplier CI holds the truth         {rate(tally.mult_covered)}   (target >= 85%)")
    if tally.detected:
        print(f"  effect above the MDD: detected                {rate(tally.detected)}   "
              f"(t-test power predicts {np.mean(tally.predicted_power):.1%})")


def bootstrap_vs_t(rng: np.random.Generator, reps: int = 4000, n_boot: int = 2000) -> None:
    """Coverage of a mean over n seeds: Student t interval vs percentile bootstrap (normal noise)."""
    from scipy import stats

    print("\n[methods] 95% interval of a mean over n seeds (normal noise), coverage:")
    for n in (2, 3, 5, 10, 30):
        x = rng.normal(0.0, 1.0, size=(reps, n))
        m, s = x.mean(axis=1), x.std(axis=1, ddof=1)
        half = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
        t_cover = np.mean(np.abs(m) <= half)
        idx = rng.integers(0, n, size=(reps, n_boot, n))
        boot = np.take_along_axis(x[:, None, :], idx, axis=2).mean(axis=2)
        lo, hi = np.quantile(boot, [0.025, 0.975], axis=1)
        b_cover = np.mean((lo <= 0) & (0 <= hi))
        print(f"  n={n:2d}: t interval {t_cover:6.1%}   percentile bootstrap {b_cover:6.1%}")


def widening(args: argparse.Namespace, rng: np.random.Generator) -> None:
    """Multiplier coverage with and without the t/z widening of the residual bootstrap."""
    from coe_sweep.analysis.arms import cells
    from coe_sweep.analysis.multiplier import compute_multipliers

    d = S.design(ARMS, SimulationLaw())
    labels = list(dict.fromkeys(p.budget_label for _, p in d.plans))
    truth = {float(lb): S.true_multiplier(d, "coe_2_k", "moe_2k", lb) for lb in labels}
    covered: dict[bool, list[bool]] = {True: [], False: []}
    for _ in range(args.reps):
        frame = S.trials_frame(d, args.seeds, rng)
        by_arm: dict[str, list] = {}
        for c in cells(frame):
            by_arm.setdefault(c.arm, []).append(c)
        seed = int(rng.integers(2**31))
        for expand in (True, False):
            for m in compute_multipliers(by_arm, "moe_2k", n_boot=args.boot, seed=seed, expand=expand)[1]:
                if m.ci is not None:
                    hi = math.inf if m.ci[1] is None else m.ci[1]
                    covered[expand].append(m.ci[0] <= truth[m.flops] <= hi)
    print(f"\n[methods] multiplier CI holds the truth ({args.seeds} seeds):")
    print(f"  with the t/z widening      {rate(covered[True])}")
    print(f"  plain residual bootstrap   {rate(covered[False])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=500, help="repetitions per scenario")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap draws per multiplier")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per config")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the whole benchmark")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    scenario("default", SimulationLaw(), args, rng)
    scenario("paired", SimulationLaw(noise_std=0.005, seed_noise_std=0.01), args, rng)
    scenario("widths", SimulationLaw(), args, rng, d_models=(32, 48, 64, 96))
    bootstrap_vs_t(rng)
    widening(args, rng)


if __name__ == "__main__":
    main()
