"""First-front speed for 10,000 trials: coe_sweep.analysis.pareto vs a naive O(n^2) numpy baseline.

Prints the median wall time over repeats for 2 and 3 objectives (random uniform points, and a
worst case where every point is non-dominated), the ratio to the baseline, and checks the two agree.
Run: .venv/bin/python benchmarks/pareto_speed.py [--n 10000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from coe_sweep.analysis.pareto import first_front_mask, non_dominated_sort


def naive_first_front(values_NM: np.ndarray, block: int = 512) -> np.ndarray:
    """O(n^2) numpy reference (minimisation): point i is dominated if any j is <= everywhere and < somewhere.

    Built column by column (the same numpy trick the library uses), so the ratio measures the
    algorithm, not a slow reduction over a length-3 axis."""
    n, m = values_NM.shape
    dominated = np.zeros(n, dtype=bool)
    for start in range(0, n, block):
        cand = values_NM[start:start + block]
        le = values_NM[None, :, 0] <= cand[:, None, 0]
        lt = values_NM[None, :, 0] < cand[:, None, 0]
        for k in range(1, m):
            le &= values_NM[None, :, k] <= cand[:, None, k]
            lt |= values_NM[None, :, k] < cand[:, None, k]
        dominated[start:start + block] = (le & lt).any(axis=1)
    return ~dominated


def median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"n={args.n} points, median of {args.repeats} repeats")
    for m in (2, 3):
        cases = {"random": rng.random((args.n, m))}
        simplex = rng.random((args.n, m))
        cases["all-non-dominated"] = simplex / simplex.sum(axis=1, keepdims=True)  # on the plane sum=1
        for name, values in cases.items():
            dirs = ["min"] * m
            fast = first_front_mask(values, dirs)
            slow = naive_first_front(values)
            assert np.array_equal(fast, slow), f"{m} objectives, {name}: fast and naive fronts disagree"
            t_fast = median_s(lambda v=values, d=dirs: first_front_mask(v, d), args.repeats)
            t_naive = median_s(lambda v=values: naive_first_front(v), max(1, args.repeats // 2))
            print(f"{m} objectives {name:>18}: front={int(fast.sum()):>6}  first front {t_fast * 1e3:8.2f} ms"
                  f"  naive {t_naive * 1e3:9.1f} ms  speed-up x{t_naive / t_fast:7.1f}")
        values = cases["random"]
        t_rank = median_s(lambda v=values, d=["min"] * m: non_dominated_sort(v, d), 3)
        n_fronts = int(non_dominated_sort(values, ["min"] * m).max()) + 1
        print(f"{m} objectives full ranking (peeling, random): {n_fronts} fronts in {t_rank * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
