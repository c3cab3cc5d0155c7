"""Law recovery: many seeded draws from known laws, every method's exponent error, coverage and extrapolation.

Draws truths around Chinchilla's constants (tests/analysis/recovery.py says how) and, per draw, fits
- the `dense` scenario (one arm): Approach 2, Approach 3 by Huber on log-loss, Approach 3 by variable
  projection (the two fitters of coe_sweep.analysis.parametric; the product keeps the better);
- the `coe` scenario (five CoE/MoE arms): Approach 2 and 3 pooled, and the CoE/MoE law.
Prints, per scenario and method: geometric-mean and worst relative error of the N* exponent a and of
alpha and beta, coverage of the true values by the 95% bootstrap intervals, psi within +-0.05, N* at
10x the largest budget within 10%, the exponent error with and without outlier trials, and the median
fit time (with its ratio to the variable-projection point fit, measured in the same run).
Run: .venv/bin/python benchmarks/law_recovery.py [--draws 100] [--n-boot 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.analysis.recovery import draw_truth, gmean, run_coe, run_dense  # noqa: E402


def _fmt_rate(values: list[bool]) -> str:
    return f"{np.mean(values):.0%} ({sum(values)}/{len(values)})" if values else "-"


def _table(scenario: str, errors: dict[str, dict[str, list[float]]], covered: dict[str, dict[str, list[bool]]]) -> None:
    print(f"\n== {scenario} scenario ==")
    header = ("method", "a gmean", "a worst", "alpha gmean", "beta gmean", "beta worst", "cover a", "cover alpha",
              "cover beta")
    print(" | ".join(f"{h:>14}" for h in header))
    for method, metrics in errors.items():
        cov = covered.get(method, {})
        row = [method, f"{gmean(metrics['a']):.2%}", f"{max(metrics['a']):.2%}",
               f"{gmean(metrics['alpha']):.2%}" if "alpha" in metrics else "-",
               f"{gmean(metrics['beta']):.2%}" if "beta" in metrics else "-",
               f"{max(metrics['beta']):.2%}" if "beta" in metrics else "-",
               _fmt_rate(cov.get("a", [])), _fmt_rate(cov.get("alpha", [])), _fmt_rate(cov.get("beta", []))]
        print(" | ".join(f"{c:>14}" for c in row))
    for method, metrics in errors.items():
        extra = []
        if "n_opt_10x" in metrics:
            within = [e <= 0.10 for e in metrics["n_opt_10x"]]
            extra.append(f"N* at 10x within 10%: {_fmt_rate(within)}, median error {np.median(metrics['n_opt_10x']):.1%}, "
                         f"worst {max(metrics['n_opt_10x']):.1%}")
        if "psi_abs" in metrics:
            within = [e <= 0.05 for e in metrics["psi_abs"]]
            extra.append(f"psi within +-0.05: {_fmt_rate(within)}, worst |error| {max(metrics['psi_abs']):.3f}, "
                         f"CI covers psi: {_fmt_rate(covered[method].get('psi', []))}")
        if "worth_pp" in metrics:
            extra.append(f"one more iteration (1 -> 2) worth X% more active params: median |error| "
                         f"{np.median(metrics['worth_pp']):.1f} points, worst {max(metrics['worth_pp']):.1f}, "
                         f"CI covers: {_fmt_rate(covered[method].get('worth', []))}")
        if "wrong_chain" in metrics:
            extra.append(f"kept an iterations term other than the true one (power): {np.mean(metrics['wrong_chain']):.0%}; "
                         f"kept the sparsity term (true gamma 0-0.2): {np.mean(metrics['sparsity_kept']):.0%}")
        for line in extra:
            print(f"  {method}: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--scenario", choices=("both", "dense", "coe"), default="both",
                        help="the truths drawn do not depend on it, so a single scenario repeats its rows of `both`")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    dense_err: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    dense_cov: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    coe_err: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    coe_cov: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    times: dict[str, list[float]] = defaultdict(list)
    by_noise: dict[float, list[float]] = defaultdict(list)
    psi_by_noise: dict[float, list[float]] = defaultdict(list)
    by_outliers: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    start = time.perf_counter()
    for i in range(args.draws):
        truth = draw_truth(rng)
        for scenario, run, err, cov in (("dense", run_dense, dense_err, dense_cov), ("coe", run_coe, coe_err, coe_cov)):
            if args.scenario not in ("both", scenario):
                continue
            result = run(truth, i, n_boot=args.n_boot)
            for method, metrics in result.errors.items():
                for key, value in metrics.items():
                    err[method][key].append(float(value))
            for method, metrics in result.covered.items():
                for key, value in metrics.items():
                    cov[method][key].append(bool(value))
            for method, seconds in result.seconds.items():
                times[f"{scenario}:{method}"].append(seconds)
            if scenario == "coe":
                by_noise[truth.noise].append(result.errors["coe_law"]["n_opt_10x"])
                psi_by_noise[truth.noise].append(result.errors["coe_law"].get("psi_abs", float("nan")))
            else:
                for method, metrics in result.errors.items():
                    by_outliers[truth.outliers][method].append(metrics["a"])
        if (i + 1) % 10 == 0:
            print(f"... {i + 1}/{args.draws} draws, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(f"law recovery: {args.draws} draws, {args.n_boot} bootstrap refits per fit, seed {args.seed}")
    if dense_err:
        _table("dense", dense_err, dense_cov)
    if coe_err:
        _table("coe", coe_err, coe_cov)
        print("\nCoE law by noise sd: N* at 10x the largest budget within 10%; psi within +-0.05")
        for noise in sorted(by_noise):
            print(f"  noise {noise}: {_fmt_rate([e <= 0.10 for e in by_noise[noise]])}; "
                  f"{_fmt_rate([e <= 0.05 for e in psi_by_noise[noise]])}")
    if by_outliers:
        print("\ndense scenario, gmean relative error of the N* exponent a, by outlier fraction:")
    for fraction in sorted(by_outliers):
        cells = ", ".join(f"{m} {gmean(v):.2%}" for m, v in by_outliers[fraction].items())
        print(f"  {fraction:.0%} outliers ({len(next(iter(by_outliers[fraction].values())))} draws): {cells}")
    ref = statistics.median(times.get("dense:approach3[varpro] point fit", [float("nan")]))
    print("\nmedian wall time, ratio to the Approach 3 point fit by variable projection (same run):")
    for key, values in sorted(times.items()):
        ratio = f"  ({statistics.median(values) / ref:.2f}x)" if np.isfinite(ref) else ""
        print(f"  {key:>28}: {statistics.median(values):.3f} s{ratio}")


if __name__ == "__main__":
    main()
