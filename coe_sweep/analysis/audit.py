"""Checks of a fitted law against the data it claims to describe: lack of fit, and extrapolation audits.

- Lack of fit: a law should pass through each budget's own interval (its IsoFLOP vertex loss
  interval, or the interval of the budget's mean residual). Under a correct law each interval
  misses with probability 1 - ci, so `lack_of_fit` warns only when the number of misses m is
  itself unlikely: P(Binomial(K, 1 - ci) >= m) < LACK_OF_FIT_P (0.05). With 95% intervals that is
  m >= 2 for 2 to 7 budgets, m >= 3 for 8 to 16.
- Extrapolation audit (leave-future-out): refit without the largest budget, predict that budget's
  optimal size and best loss, and compare with what the budget itself shows (its IsoFLOP vertex,
  else its best trial); with >= 4 budgets also the spread of the served prediction over refits
  that each drop one budget. See `coe_sweep.analysis.laws` for the refits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from coe_sweep.analysis import columns as C

LACK_OF_FIT_P = 0.05


def lack_of_fit(what: str, labels: Sequence[str], values: Sequence[float],
                intervals: Sequence[tuple[float, float] | None], ci: float, *, unit: str = "budgets'") -> str | None:
    """A warning naming the budgets whose own interval excludes the law's value, when the misses are
    too many for chance (see the module docstring); None otherwise."""
    checked = [(lab, v, iv) for lab, v, iv in zip(labels, values, intervals, strict=True)
               if iv is not None and np.isfinite(v) and np.all(np.isfinite(iv))]
    missed = [(lab, v, iv) for lab, v, iv in checked if not iv[0] <= v <= iv[1]]
    if not missed or binom.sf(len(missed) - 1, len(checked), 1.0 - ci) >= LACK_OF_FIT_P:
        return None
    shown = ", ".join(f"{lab} ({v:.4g} vs [{iv[0]:.4g}, {iv[1]:.4g}])" for lab, v, iv in missed[:6])
    return (f"lack of fit: {what} misses {len(missed)} of {len(checked)} {unit} own {ci:.0%} intervals "
            f"({shown}{', ...' if len(missed) > 6 else ''}); its intervals are too narrow and its predictions "
            "biased beyond the data")


@dataclass
class AuditPoint:
    """One method's leave-future-out check: fitted without `held_out`, compared with what it shows."""

    method: str
    held_out: str  # the budget label left out (the largest)
    held_out_flops: float
    reference: str  # 'vertex' (the budget's IsoFLOP vertex) or 'best trial'
    n_opt_true: float | None
    n_opt_pred: float | None
    n_opt_rel_error: float | None  # pred / true - 1
    loss_true: float | None
    loss_pred: float | None
    loss_error: float | None  # pred - true
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable(dict(self.__dict__))  # type: ignore[return-value]


@dataclass
class Spread:
    """Drop-one-budget spread of a served prediction: min and max over refits that each leave one budget out."""

    method: str
    n_refits: int
    n_opt_range: tuple[float, float] | None
    loss_range: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable(dict(self.__dict__))  # type: ignore[return-value]


def rel_error(pred: float | None, true: float | None) -> float | None:
    if pred is None or true is None or not (np.isfinite(pred) and np.isfinite(true)) or true == 0:
        return None
    return float(pred / true - 1.0)


def diff(pred: float | None, true: float | None) -> float | None:
    if pred is None or true is None or not (np.isfinite(pred) and np.isfinite(true)):
        return None
    return float(pred - true)


def value_range(values: Sequence[float | None]) -> tuple[float, float] | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return (float(min(finite)), float(max(finite))) if finite else None
