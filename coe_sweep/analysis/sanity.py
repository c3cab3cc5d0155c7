"""Sanity checks of fitted answers: the one home of every flag a reader sees next to a fit.

A flag says what is wrong with one fit (an IsoFLOP level's parabola, the Approach 2 laws, a parametric
law, a prediction) in a sentence, with a code a program can test. A *blocking* flag means the fit's
optimum must not be shown as an answer: the page draws that fit dashed, with no optimum star, and the
reason on hover; the CLI and the report print it beside the numbers. Non-blocking flags are warnings.

Checks (each names the quantity it compares):
- `too_few_points` / `not_convex` / `edge_of_range` / `lopsided` / `bootstrap_unstable`: the IsoFLOP
  profile's own warnings (`isoflop.IsoFlopWarning`), as flags. A vertex outside the sampled range is
  `vertex_outside_range` (blocking); a best point at the edge with the vertex inside stays `edge_of_range`.
- `min_below_measured`: a level's fitted minimum loss lies below its best measured trial by more than
  the level's noise (2 standard deviations: of the seeds of one config when configs have 2+ seeds, else the
  fit's robust residual scale) plus what the sampling allows (an honest parabola's vertex sits below its
  nearest sampled size by A d^2, d = their distance in ln x).
- `exponent_includes_zero`: a fitted exponent's interval contains 0: the data cannot tell growth from none.
- `implausible_loss`: a predicted loss below 0, below the irreducible loss E fitted by a parametric law
  (lower end of its interval), or above the loss of a uniform guess over the vocabulary, ln(V).
- `too_few_levels`: Approach 2 rests on fewer than 3 levels (with 2 the laws pass exactly through both).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.analysis.isoflop import MIN_DISTINCT_X, MIN_POINTS, IsoFlopProfile, IsoFlopWarning
from coe_sweep.analysis.laws import ParametricFit
from coe_sweep.analysis.methods import LawSet
from coe_sweep.analysis.scaling import ScalingFit

NOISE_SIGMAS = 2.0
VOCAB_SIZE = "model.vocab_size"


class FlagCode(str, Enum):
    TOO_FEW_POINTS = "too_few_points"
    NOT_CONVEX = "not_convex"
    VERTEX_OUTSIDE_RANGE = "vertex_outside_range"
    EDGE_OF_RANGE = "edge_of_range"
    LOPSIDED = "lopsided"
    BOOTSTRAP_UNSTABLE = "bootstrap_unstable"
    MIN_BELOW_MEASURED = "min_below_measured"
    EXPONENT_INCLUDES_ZERO = "exponent_includes_zero"
    IMPLAUSIBLE_LOSS = "implausible_loss"
    TOO_FEW_LEVELS = "too_few_levels"


BLOCKING = frozenset({FlagCode.TOO_FEW_POINTS, FlagCode.NOT_CONVEX, FlagCode.VERTEX_OUTSIDE_RANGE,
                      FlagCode.BOOTSTRAP_UNSTABLE, FlagCode.MIN_BELOW_MEASURED, FlagCode.EXPONENT_INCLUDES_ZERO,
                      FlagCode.IMPLAUSIBLE_LOSS})


@dataclass(frozen=True)
class FitFlag:
    code: FlagCode
    fit: str  # "isoflop" | "approach2" | "approach3" | "coe_law" | "prediction"
    level: str | None  # the budget level's label, for a level's fit
    text: str  # one sentence for a reader

    @property
    def blocking(self) -> bool:
        return self.code in BLOCKING


def is_flagged(flags: Iterable[FitFlag]) -> bool:
    return any(f.blocking for f in flags)


def thin_level_text(label: str, n_points: int, n_distinct: int) -> str:
    return (f"level {label}: needs at least {MIN_POINTS} finished trials at {MIN_DISTINCT_X}+ sizes to fit a "
            f"parabola; this level has {n_points} at {n_distinct} size(s)")


def _sampling_allowance(profile: IsoFlopProfile) -> float:
    """How far below its nearest sampled size an honest convex vertex may sit: A d^2, d = the ln-distance from
    the vertex to the nearest sampled x (A: the parabola's curvature in ln x)."""
    if profile.coef is None or profile.coef[0] <= 0 or profile.x_opt is None:
        return 0.0
    xs = np.array([p["x"] for p in profile.points if p.get("x") and p["x"] > 0], dtype=float)
    if xs.size == 0:
        return 0.0
    d = float(np.min(np.abs(np.log(xs) - np.log(profile.x_opt))))
    return float(profile.coef[0] * d * d)


def level_noise(profile: IsoFlopProfile) -> float:
    """The level's measurement noise (standard deviation of the loss): pooled over the configs trained with
    2+ seeds when there are any (replicates measure noise alone), else the fit's robust residual scale."""
    losses: dict[str, list[float]] = {}
    for p in profile.points:
        key = p.get(C.CONFIG_HASH)
        if key is not None and p.get("loss") is not None:
            losses.setdefault(str(key), []).append(float(p["loss"]))
    variances = [float(np.var(v, ddof=1)) for v in losses.values() if len(v) >= 2]
    if variances:
        return float(np.sqrt(np.mean(variances)))
    return float(profile.robust_scale or 0.0)


def profile_flags(profile: IsoFlopProfile) -> list[FitFlag]:
    """Flags of one level's IsoFLOP fit: its own warnings, and a minimum below the measured trials."""
    label = profile.budget_label
    flags = []
    for kind, note in zip(profile.warnings, profile.notes, strict=False):
        if kind == IsoFlopWarning.TOO_FEW_POINTS:
            text = thin_level_text(label, profile.n_points, profile.n_distinct_x)
            flags.append(FitFlag(FlagCode.TOO_FEW_POINTS, "isoflop", label, text))
            continue
        code = FlagCode(kind.value)
        if kind == IsoFlopWarning.EDGE_OF_RANGE and profile.x_opt is not None \
                and not profile.x_min <= profile.x_opt <= profile.x_max:
            code = FlagCode.VERTEX_OUTSIDE_RANGE
        flags.append(FitFlag(code, "isoflop", label, f"level {label}: {note}"))
    if profile.ok and profile.loss_opt is not None and math.isfinite(profile.best_loss):
        noise = NOISE_SIGMAS * level_noise(profile)
        allowance = _sampling_allowance(profile)
        gap = profile.best_loss - profile.loss_opt
        if gap > noise + allowance:
            flags.append(FitFlag(FlagCode.MIN_BELOW_MEASURED, "isoflop", label,
                                 f"level {label}: the fitted minimum loss {profile.loss_opt:.4g} lies {gap:.3g} below "
                                 f"the best measured trial ({profile.best_loss:.4g}), more than the level's noise "
                                 f"({noise:.2g}) and sampling ({allowance:.2g}) allow"))
    return flags


def interval_includes_zero(ci: Sequence[float] | None) -> bool:
    return ci is not None and len(ci) == 2 and all(math.isfinite(v) for v in ci) and ci[0] <= 0.0 <= ci[1]


def exponent_flag(fit: str, quantity: str, exponent: float | None, ci: Sequence[float] | None) -> FitFlag | None:
    if not interval_includes_zero(ci):
        return None
    assert ci is not None
    value = "-" if exponent is None else f"{exponent:.3g}"
    return FitFlag(FlagCode.EXPONENT_INCLUDES_ZERO, fit, None,
                   f"{fit}: {quantity} = {value} has an interval [{ci[0]:.3g}, {ci[1]:.3g}] that includes 0: "
                   "the data cannot tell growth from none")


def scaling_flags(x_name: str, x_exponent: tuple[float | None, Sequence[float] | None],
                  loss_exponent: tuple[float | None, Sequence[float] | None], n_levels: int) -> list[FitFlag]:
    """Flags of the Approach 2 laws: exponents whose interval includes 0, too few levels."""
    flags = [f for f in (exponent_flag("approach2", f"the exponent of optimal {x_name} in C", *x_exponent),
                         exponent_flag("approach2", "the exponent of the optimal loss in C", *loss_exponent))
             if f is not None]
    if n_levels < 3:
        flags.append(FitFlag(FlagCode.TOO_FEW_LEVELS, "approach2", None,
                             f"approach2: the laws rest on {n_levels} level(s) with a vertex; 3 or more test "
                             "the law instead of passing exactly through its points"))
    return flags


def approach2_flags(fit: ScalingFit) -> list[FitFlag]:
    """`scaling_flags` of a fitted ScalingFit (the loss law's exponent is -alpha)."""
    law = fit.loss_law
    loss_ci = None if law.alpha_ci is None else (-law.alpha_ci[1], -law.alpha_ci[0])
    return scaling_flags(fit.x_name, (fit.x_law.exponent, fit.x_law.exponent_ci), (-law.alpha, loss_ci),
                         len(fit.budget_labels))


def vocab_loss(frame: pd.DataFrame) -> float | None:
    """ln(V): the loss of a uniform guess over the sweep's vocabulary (the largest V of its trials)."""
    if frame.empty or VOCAB_SIZE not in frame.columns:
        return None
    vocab = C.numeric(frame, VOCAB_SIZE)
    vocab = vocab[np.isfinite(vocab) & (vocab > 1)]
    return float(np.log(vocab.max())) if vocab.size else None


def loss_flags(fit: str, loss: float | None, *, floor: float | None, floor_name: str,
               ceiling: float | None, where: str) -> list[FitFlag]:
    """A predicted loss outside any plausible value: below 0, below the irreducible floor, above ln(V)."""
    if loss is None or not math.isfinite(loss):
        return []
    if loss < 0:
        why = "below 0"
    elif floor is not None and loss < floor:
        why = f"below {floor_name} ({floor:.4g})"
    elif ceiling is not None and loss > ceiling:
        why = f"above the loss of a uniform guess over the vocabulary, ln(V) = {ceiling:.4g}"
    else:
        return []
    return [FitFlag(FlagCode.IMPLAUSIBLE_LOSS, fit, None, f"{fit}: the predicted loss {loss:.4g} {where} is {why}: "
                                                          "not a plausible loss")]


def merge(*groups: Iterable[FitFlag]) -> list[FitFlag]:
    """Flags of several checks, each once, in order."""
    seen: set[tuple[str, str, str | None, str]] = set()
    out = []
    for flag in (f for group in groups for f in group):
        key = (flag.code.value, flag.fit, flag.level, flag.text)
        if key not in seen:
            seen.add(key)
            out.append(flag)
    return out


def no_scaling_text(profiles: Sequence[IsoFlopProfile]) -> str:
    """Why the optimum cannot be drawn against budget: which levels lack a vertex, and what each needs."""
    usable = [p for p in profiles if p.ok]
    reasons = []
    for p in profiles:
        if p.ok:
            continue
        if IsoFlopWarning.TOO_FEW_POINTS in p.warnings:
            reasons.append(thin_level_text(p.budget_label, p.n_points, p.n_distinct_x))
        else:
            reasons.append(f"level {p.budget_label}: no vertex ({'; '.join(p.notes) or 'no fit'})")
    return (f"the optimum against budget needs a fitted IsoFLOP vertex at 2 or more levels; this sweep has "
            f"{len(usable)} of {len(profiles)} level(s) with one" + (": " + "; ".join(reasons) if reasons else ""))


def irreducible_floor(law_set: LawSet) -> tuple[float, str] | None:
    """The lowest plausible loss a parametric law knows: the lower end of its fitted E's interval."""
    for method in ("approach3", "coe_law"):
        fit = law_set.fitted().get(method)
        if isinstance(fit, ParametricFit):
            value, ci = fit.params()["E"]
            floor = ci[0] if ci is not None and math.isfinite(ci[0]) else value
            if math.isfinite(floor):
                return float(floor), f"the irreducible loss E fitted by {method} (lower end of its interval)"
    return None


def method_flags(law_set: LawSet) -> list[FitFlag]:
    """Exponents of every fitted method whose interval includes 0."""
    flags = []
    for method, fit in law_set.fitted().items():
        if isinstance(fit, ParametricFit):
            exponent, ci = fit.n_exponent()
            flags.append(exponent_flag(method, "the exponent of optimal N in C", exponent, ci))
            for name, of in (("alpha", "N"), ("beta", "D")):
                value, interval = fit.params().get(name, (None, None))
                flags.append(exponent_flag(method, f"the law's exponent {name} (of {of})", value, interval))
    return [f for f in flags if f is not None]


def prediction_flags(frame: pd.DataFrame, law_set: LawSet | None, predictions: Sequence[tuple[str, float | None]],
                     flops: float) -> list[FitFlag]:
    """Flags of the predicted losses at `flops` ((method, loss) pairs): below 0, below E, above ln(V)."""
    floor = irreducible_floor(law_set) if law_set is not None else None
    ceiling = vocab_loss(frame)
    flags: list[FitFlag] = []
    for method, loss in predictions:
        own_floor = floor if method == "approach2" else None  # a parametric law never goes below its own E
        flags += loss_flags(method, loss, floor=own_floor[0] if own_floor else None,
                            floor_name=own_floor[1] if own_floor else "", ceiling=ceiling, where=f"at {flops:.3g} FLOPs")
    return flags
