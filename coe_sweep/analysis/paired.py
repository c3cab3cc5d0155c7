"""Seed statistics of one comparison: mean +- CI over seeds, the paired difference, its verdict and power.

Method (why not a bootstrap here): with the few seeds a sweep can afford (3 is typical), a percentile
bootstrap of a mean cannot cover: its resamples never leave [min, max] of the data, and for n = 3 that
range holds the true mean only 75% of the time. The Student t interval over the paired differences
(seed i of the arm minus seed i of the baseline, the same seed value and so the same batch order) is
exact for normal noise at any n and agrees with the bootstrap as n grows; benchmarks/compare_calibration.py
measures both. The p-value is the paired t-test's (two-sided); the verdict follows the interval, never
the sign: "better" (the whole CI below 0: lower loss), "worse" (above 0) or "no detectable difference".

Power (two-sided paired t-test at `alpha`, exact through the noncentral t distribution): the minimum
detectable difference is the true difference found with probability `power` at the observed spread
and number of seeds; `seeds_needed` is the fewest seeds that find a given difference that often.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, stats

LEVEL = 0.95
POWER = 0.8
MAX_SEEDS = 10_000
Verdict = Literal["better", "worse", "no detectable difference", "not enough seeds"]


@dataclass(frozen=True)
class MeanCI:
    """Mean over seeds with a Student t interval (None with fewer than two seeds)."""

    n: int
    mean: float
    sd: float | None
    ci: tuple[float, float] | None


def mean_ci(values: np.ndarray | list[float] | tuple[float, ...], level: float = LEVEL) -> MeanCI:
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        raise ValueError("mean_ci: no values")
    mean = float(x.mean())
    if n < 2:
        return MeanCI(n, mean, None, None)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(n, mean, sd, (mean - half, mean + half))


def t_power(effect: float, sd: float, n: int, alpha: float = 1 - LEVEL) -> float:
    """Probability that a two-sided paired t-test at `alpha` over n pairs finds a true difference `effect`."""
    if n < 2:
        return float("nan")
    if sd <= 0:
        return 1.0 if effect != 0 else alpha
    df = n - 1
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    nc = abs(effect) * math.sqrt(n) / sd
    lower = float(stats.nct.cdf(-crit, df, nc))  # the far tail: scipy returns NaN where it underflows
    return float(stats.nct.sf(crit, df, nc)) + (lower if math.isfinite(lower) else 0.0)


@functools.lru_cache(maxsize=4096)
def _detectable_per_sd(n: int, power: float, alpha: float) -> float:
    """Minimum detectable difference in units of the sd of the differences (it scales with the sd)."""
    return float(optimize.brentq(lambda d: t_power(d, 1.0, n, alpha) - power, 0.0, 1e3, xtol=1e-9))


def detectable_difference(sd: float, n: int, power: float = POWER, alpha: float = 1 - LEVEL) -> float | None:
    """The smallest |true difference| found with probability `power` (None with fewer than two seeds)."""
    if n < 2:
        return None
    return sd * _detectable_per_sd(n, power, alpha) if sd > 0 else 0.0


def seeds_needed(effect: float, sd: float, power: float = POWER, alpha: float = 1 - LEVEL) -> int | None:
    """Fewest seeds (pairs) whose t-test finds a true difference `effect` with probability `power`;
    None when even MAX_SEEDS are not enough (or the effect is 0)."""
    if effect == 0 or not math.isfinite(effect):
        return None
    if sd <= 0:
        return 2
    ratio = abs(effect) / sd

    def enough(n: int) -> bool:  # the detectable difference shrinks as seeds grow
        return _detectable_per_sd(n, power, alpha) <= ratio

    lo, hi = 2, 2
    while not enough(hi):
        lo, hi = hi + 1, hi * 2
        if hi > MAX_SEEDS:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
    return lo


@dataclass(frozen=True)
class PairedDifference:
    """Arm minus baseline final val loss over the seeds both have (negative: the arm is better)."""

    seeds: tuple[int, ...]
    mean: float
    sd: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    level: float
    detectable: float | None  # minimum detectable |difference| at POWER, this spread and these seeds
    seeds_needed: int | None  # seeds to detect the observed difference at POWER (when it was not)
    verdict: Verdict
    text: str

    @property
    def n(self) -> int:
        return len(self.seeds)


def _fmt(value: float) -> str:
    return f"{value:+.3f}" if abs(value) >= 5e-4 or value == 0 else f"{value:+.2e}"


def verdict_of(ci: tuple[float, float] | None, level: float, n: int) -> tuple[Verdict, str]:
    """The words that follow the interval."""
    if ci is None:
        return "not enough seeds", (f"not enough seeds to tell ({n} paired seed{'s' if n != 1 else ''}: "
                                    "an interval needs at least 2; set search.seeds)")
    interval = f"{int(round(level * 100))}% CI {_fmt(ci[0])} to {_fmt(ci[1])}"
    if ci[1] < 0:
        return "better", f"better ({interval})"
    if ci[0] > 0:
        return "worse", f"worse ({interval})"
    return "no detectable difference", f"no detectable difference ({interval})"


def paired_difference(arm_seeds: tuple[int, ...], arm_losses: tuple[float, ...], base_seeds: tuple[int, ...],
                      base_losses: tuple[float, ...], level: float = LEVEL, power: float = POWER) -> PairedDifference:
    """Paired t statistics over the seeds both sides have (see the module docstring)."""
    arm = dict(zip(arm_seeds, arm_losses, strict=True))
    base = dict(zip(base_seeds, base_losses, strict=True))
    shared = tuple(sorted(set(arm) & set(base)))
    d = np.array([arm[s] - base[s] for s in shared], dtype=float)
    if not shared:
        raise ValueError("paired_difference: the two sides share no seed")
    summary = mean_ci(d, level)
    p_value = None
    if summary.sd is not None:
        p_value = (1.0 if summary.mean == 0 else 0.0) if summary.sd == 0 else float(
            2 * stats.t.sf(abs(summary.mean) / (summary.sd / math.sqrt(summary.n)), summary.n - 1))
    verdict, text = verdict_of(summary.ci, level, summary.n)
    detectable = needed = None
    if summary.sd is not None:
        detectable = detectable_difference(summary.sd, summary.n, power, 1 - level)
        if verdict == "no detectable difference":
            needed = seeds_needed(summary.mean, summary.sd, power, 1 - level)
    return PairedDifference(shared, summary.mean, summary.sd, summary.ci, p_value, level, detectable, needed,
                            verdict, text)
