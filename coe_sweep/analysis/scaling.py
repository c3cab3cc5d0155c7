"""Scaling laws across budgets: how the IsoFLOP optimum moves with compute, and what to train next.

- x*(C) = a C^b and tokens*(C) = a_D C^b_D: ordinary least squares in log-log space over the
  budgets whose IsoFLOP profile has a vertex (Chinchilla Approach 2).
- loss*(C): `loss_law="irreducible"` fits loss* = E + A C^-alpha: for a given E, (A, alpha) are the
  log-log least squares of loss* - E; E in [0, min loss*) minimises the squared error in loss (grid
  over E, then a bounded scalar refinement for the point fit). `loss_law="power"` fits
  loss* = A C^-alpha (no irreducible term). The default `"auto"` takes the irreducible form with
  >= 3 budgets and the power law with 2: a pure power law through real losses that approach an
  irreducible floor misses the budgets' own intervals and serves too-low losses far out.
- Lack of fit: the loss law is checked against every used budget's own vertex-loss interval
  (`audit.lack_of_fit`); too many misses for chance add a warning.
- Intervals: a "vertex-draw" bootstrap. Each replicate draws, for every budget, one of that
  budget's bootstrap vertices (x*, loss*, tokens* drawn together, from `IsoFlopProfile`'s
  resampled refits) and refits all laws; percentile intervals over replicates for coefficient,
  exponent and every prediction. This propagates the per-budget vertex uncertainty; it does not
  add between-budget scatter beyond it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from coe_sweep.analysis import columns as C
from coe_sweep.analysis.audit import lack_of_fit
from coe_sweep.analysis.configs import parse_param, trainable_config
from coe_sweep.analysis.isoflop import IsoFlopProfile, IsoFlopWarning

log = logging.getLogger(__name__)

LossLawKind = Literal["power", "irreducible"]
LOSS_LAWS = ("auto", "power", "irreducible")
_E_GRID = 256


class NotEnoughData(ValueError):
    """Too few usable budgets (or rows) to fit; the message says how many and why."""


def _line_fit(lc_K: np.ndarray, y_BK: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise least squares y = intercept + slope * lc (lc centred); returns (intercept_B, slope_B)."""
    slope_B = (y_BK * lc_K).sum(axis=1) / (lc_K * lc_K).sum()
    return y_BK.mean(axis=1), slope_B


def _interval(values: np.ndarray, ci: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    lo, hi = np.percentile(values, [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


@dataclass
class PowerLaw:
    """y = coef * C^exponent, fitted in log-log space; intervals from the vertex-draw bootstrap."""

    coef: float
    exponent: float
    coef_ci: tuple[float, float] | None
    exponent_ci: tuple[float, float] | None
    log_mean_flops: float = field(repr=False)
    boot_intercept: np.ndarray = field(repr=False)  # ln y at C = exp(log_mean_flops), per replicate
    boot_slope: np.ndarray = field(repr=False)

    def __call__(self, flops: float) -> float:
        return float(self.coef * flops ** self.exponent)

    def interval(self, flops: float, ci: float) -> tuple[float, float] | None:
        log_y = self.boot_intercept + self.boot_slope * (np.log(flops) - self.log_mean_flops)
        bounds = _interval(log_y, ci)
        return None if bounds is None else (float(np.exp(bounds[0])), float(np.exp(bounds[1])))

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable({"coef": self.coef, "exponent": self.exponent, "coef_ci": self.coef_ci,
                           "exponent_ci": self.exponent_ci})  # type: ignore[return-value]


def _power_law(lc_K: np.ndarray, log_mean: float, log_y_K: np.ndarray, boot_log_y_BK: np.ndarray,
               ci: float) -> PowerLaw:
    icpt, slope = (v[0] for v in _line_fit(lc_K, log_y_K[None]))
    b_icpt, b_slope = _line_fit(lc_K, boot_log_y_BK)
    coef_ci = _interval(b_icpt - b_slope * log_mean, ci)
    return PowerLaw(coef=float(np.exp(icpt - slope * log_mean)), exponent=float(slope),
                    coef_ci=None if coef_ci is None else (float(np.exp(coef_ci[0])), float(np.exp(coef_ci[1]))),
                    exponent_ci=_interval(b_slope, ci), log_mean_flops=log_mean,
                    boot_intercept=b_icpt, boot_slope=b_slope)


@dataclass
class LossLaw:
    """loss*(C) = E + A C^-alpha (E = 0 for kind='power')."""

    kind: LossLawKind
    E: float
    A: float
    alpha: float
    E_ci: tuple[float, float] | None
    alpha_ci: tuple[float, float] | None
    boot_params: np.ndarray = field(repr=False)  # (B, 3): E, ln A, alpha

    def __call__(self, flops: float) -> float:
        return float(self.E + self.A * flops ** (-self.alpha))

    def interval(self, flops: float, ci: float) -> tuple[float, float] | None:
        E, lnA, alpha = self.boot_params.T
        with np.errstate(over="ignore"):  # a bootstrap refit far from the data may blow up: inf, not a warning
            return _interval(E + np.exp(lnA - alpha * np.log(flops)), ci)

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable({"kind": self.kind, "E": self.E, "A": self.A, "alpha": self.alpha,
                           "E_ci": self.E_ci, "alpha_ci": self.alpha_ci})  # type: ignore[return-value]


def _irreducible_sse(E_BG: np.ndarray, lc_K: np.ndarray, log_mean: float,
                     L_BK: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each (replicate b, candidate E g): log-log fit of L - E, and its squared error in L."""
    z_BGK = np.log(np.maximum(L_BK[:, None, :] - E_BG[:, :, None], 1e-300))
    icpt_BG, slope_BG = z_BGK.mean(axis=2), (z_BGK * lc_K).sum(axis=2) / (lc_K * lc_K).sum()
    pred_BGK = E_BG[:, :, None] + np.exp(icpt_BG[:, :, None] + slope_BG[:, :, None] * lc_K)
    sse_BG = ((pred_BGK - L_BK[:, None, :]) ** 2).sum(axis=2)
    return sse_BG, icpt_BG - slope_BG * log_mean, -slope_BG


def _fit_irreducible(lc_K: np.ndarray, log_mean: float, L_BK: np.ndarray) -> np.ndarray:
    """(B, 3) of E, ln A, alpha by the E-grid profile (see module docstring)."""
    q_G = np.concatenate([np.geomspace(1e-4, 1.0, _E_GRID - 1), [1.0]])
    E_BG = L_BK.min(axis=1, keepdims=True) * (1.0 - q_G)[None, :]
    sse, lnA, alpha = _irreducible_sse(E_BG, lc_K, log_mean, L_BK)
    g = np.nanargmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    rows = np.arange(L_BK.shape[0])
    return np.stack([E_BG[rows, g], lnA[rows, g], alpha[rows, g]], axis=1)


def _loss_law(kind: LossLawKind, lc_K: np.ndarray, log_mean: float, L_K: np.ndarray,
              boot_L_BK: np.ndarray, ci: float) -> LossLaw:
    if kind == "power":
        icpt, slope = (v[0] for v in _line_fit(lc_K, np.log(L_K)[None]))
        b_icpt, b_slope = _line_fit(lc_K, np.log(np.maximum(boot_L_BK, 1e-300)))
        boot = np.stack([np.zeros_like(b_icpt), b_icpt - b_slope * log_mean, -b_slope], axis=1)
        return LossLaw("power", 0.0, float(np.exp(icpt - slope * log_mean)), float(-slope), None,
                       _interval(-b_slope, ci), boot)
    E0, _, _ = _fit_irreducible(lc_K, log_mean, L_K[None])[0]
    top = float(L_K.min())

    def sse(E: float) -> float:
        return float(_irreducible_sse(np.array([[E]]), lc_K, log_mean, L_K[None])[0][0, 0])

    E = float(minimize_scalar(sse, bounds=(0.0, top * (1 - 1e-9)), method="bounded",
                              options={"xatol": 1e-12 * max(top, 1.0)}).x)
    E = E if sse(E) <= sse(E0) else float(E0)
    _, lnA, alpha = (float(v[0, 0]) for v in _irreducible_sse(np.array([[E]]), lc_K, log_mean, L_K[None]))
    boot = _fit_irreducible(lc_K, log_mean, boot_L_BK)
    return LossLaw("irreducible", E, float(np.exp(lnA)), alpha, _interval(boot[:, 0], ci),
                   _interval(boot[:, 2], ci), boot)


@dataclass
class Prediction:
    flops: float
    x_name: str
    x_opt: float
    x_opt_ci: tuple[float, float] | None
    tokens_opt: float | None
    tokens_opt_ci: tuple[float, float] | None
    loss_opt: float
    loss_opt_ci: tuple[float, float] | None
    ci: float
    extrapolation_factor: float  # how far outside the fitted budgets (1.0 = inside the range)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable(dict(self.__dict__))  # type: ignore[return-value]


@dataclass
class ScalingFit:
    x_name: str
    budgets_flops: list[float]  # the budgets used, ascending
    budget_labels: list[str]
    x_opt: list[float]
    tokens_opt: list[float] | None
    loss_opt: list[float]
    x_law: PowerLaw
    tokens_law: PowerLaw | None  # None when a used profile has no tokens*
    loss_law: LossLaw
    n_boot: int
    seed: int
    ci: float
    skipped: dict[str, str] = field(default_factory=dict)  # budget label -> why it was not used
    warnings: list[str] = field(default_factory=list)

    def predict(self, flops: float) -> Prediction:
        """Compute-optimal x, tokens and loss at `flops`, with bootstrap intervals."""
        if not (isinstance(flops, (int, float, np.number)) and np.isfinite(flops) and flops > 0):
            raise ValueError(f"flops={flops!r} is invalid: expected a finite number > 0 (training FLOPs)")
        flops = float(flops)
        lo, hi = self.budgets_flops[0], self.budgets_flops[-1]
        factor = max(flops / hi, lo / flops, 1.0)
        warnings = [f"extrapolating {factor:.3g}x beyond the fitted budgets [{lo:.3g}, {hi:.3g}] FLOPs"] \
            if factor > 1.0 else []
        tokens = self.tokens_law(flops) if self.tokens_law else None
        return Prediction(
            flops=flops, x_name=self.x_name, x_opt=self.x_law(flops), x_opt_ci=self.x_law.interval(flops, self.ci),
            tokens_opt=tokens, tokens_opt_ci=self.tokens_law.interval(flops, self.ci) if self.tokens_law else None,
            loss_opt=self.loss_law(flops), loss_opt_ci=self.loss_law.interval(flops, self.ci), ci=self.ci,
            extrapolation_factor=factor, warnings=warnings + list(self.warnings))

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("x_law", "tokens_law", "loss_law")}
        out.update(x_law=self.x_law.to_dict(), loss_law=self.loss_law.to_dict(),
                   tokens_law=self.tokens_law.to_dict() if self.tokens_law else None)
        return C.jsonable(out)  # type: ignore[return-value]


def scaling_fit(profiles: list[IsoFlopProfile], *, loss_law: str = "auto", n_boot: int = 1000,
                seed: int = 0, ci: float = 0.95,
                exclude_warnings: tuple[IsoFlopWarning | str, ...] = ()) -> ScalingFit:
    """Fit the laws over profiles with a vertex (and none of `exclude_warnings`); NotEnoughData below 2."""
    if loss_law not in LOSS_LAWS:
        raise ValueError(f"loss_law={loss_law!r} is invalid: expected one of {', '.join(LOSS_LAWS)}")
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci!r} is invalid: expected a level strictly between 0 and 1, e.g. 0.95")
    if n_boot < 2:
        raise ValueError(f"n_boot={n_boot!r} is invalid: expected an integer >= 2")
    excluded = {IsoFlopWarning(w) for w in exclude_warnings}
    used: list[IsoFlopProfile] = []
    skipped: dict[str, str] = {}
    for p in sorted(profiles, key=lambda p: p.budget_flops):
        bad = excluded.intersection(p.warnings)
        if not p.ok:
            skipped[p.budget_label] = "no vertex: " + ("; ".join(p.notes) or "no fit")
        elif not (np.isfinite(p.budget_flops) and p.budget_flops > 0):
            skipped[p.budget_label] = f"budget_flops={p.budget_flops!r} is not a positive number"
        elif bad:
            skipped[p.budget_label] = "excluded warning(s): " + ", ".join(sorted(w.value for w in bad))
        else:
            used.append(p)
    if len({p.budget_flops for p in used}) < 2:
        why = "; ".join(f"budget {label}: {reason}" for label, reason in skipped.items())
        raise NotEnoughData(f"scaling_fit needs >= 2 budgets with a vertex at distinct FLOPs, got {len(used)}"
                            f"{' (' + why + ')' if why else ''}")
    kind: LossLawKind = ("irreducible" if len(used) >= 3 else "power") if loss_law == "auto" else loss_law  # type: ignore[assignment]
    warnings = [f"budget {p.budget_label}: {', '.join(w.value for w in p.warnings)}" for p in used if p.warnings]
    if kind == "irreducible" and len(used) < 3:
        warnings.append("loss_law='irreducible' needs >= 3 budgets: fitted a pure power law instead")
        kind = "power"
    if len(used) == 2:
        warnings.append("only 2 budgets: the laws pass exactly through both vertices")

    log_c = np.log([p.budget_flops for p in used])
    log_mean = float(log_c.mean())
    lc_K = log_c - log_mean
    rng = np.random.default_rng(seed)
    draws_BK = np.stack([_draw(p, rng, n_boot) for p in used], axis=1)  # (B, K, 3)
    log_x_K = np.log(_floats([p.x_opt for p in used]))
    x_law = _power_law(lc_K, log_mean, log_x_K, draws_BK[:, :, 0], ci)
    tokens_law = None
    if all(p.tokens_opt is not None for p in used):
        log_tok_K = np.log(_floats([p.tokens_opt for p in used]))
        tokens_law = _power_law(lc_K, log_mean, log_tok_K, draws_BK[:, :, 2], ci)
    loss_K = np.array([p.loss_opt for p in used], dtype=float)
    law = _loss_law(kind, lc_K, log_mean, loss_K, draws_BK[:, :, 1], ci)
    misfit = lack_of_fit(f"the {law.kind} loss law", [p.budget_label for p in used],
                         [law(p.budget_flops) for p in used], [p.loss_opt_ci for p in used], ci)
    warnings += [misfit] if misfit else []
    return ScalingFit(
        x_name=used[0].x_name, budgets_flops=[p.budget_flops for p in used],
        budget_labels=[p.budget_label for p in used], x_opt=[float(p.x_opt) for p in used],  # type: ignore[arg-type]
        tokens_opt=[float(p.tokens_opt) for p in used] if tokens_law else None,  # type: ignore[arg-type]
        loss_opt=loss_K.tolist(), x_law=x_law, tokens_law=tokens_law, loss_law=law, n_boot=n_boot,
        seed=seed, ci=ci, skipped=skipped, warnings=warnings)


def _draw(p: IsoFlopProfile, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot, 3) of (ln x*, loss*, ln tokens*) drawn from the profile's bootstrap vertices."""
    point = np.array([np.log(p.x_opt), p.loss_opt,  # type: ignore[arg-type]
                      np.log(p.tokens_opt) if p.tokens_opt else np.nan])
    n = p.boot_log_x_opt.size
    if n == 0:
        return np.repeat(point[None], n_boot, axis=0)
    tokens = p.boot_log_tokens_opt if p.boot_log_tokens_opt.size == n else np.full(n, np.nan)
    pool = np.stack([p.boot_log_x_opt, p.boot_loss_opt, tokens], axis=1)
    return pool[rng.integers(0, n, size=n_boot)]


@dataclass
class NearestConfig:
    run_id: str | None
    row_index: Any  # the frame's index label of the chosen row
    x_name: str
    x: float
    x_opt: float
    log_distance: float  # |ln x - ln x*|
    family: dict[str, Any]  # CONFIG_FAMILY_COLUMNS of the chosen row
    budget_label: str | None  # the sampled budget of the chosen row
    final_val_loss: float | None
    trainable: dict[str, Any]  # RunSpec.from_dict-able: the row's params, horizon = predicted tokens
    dropped_params: list[str]
    alternatives: list[dict[str, Any]]  # next-nearest distinct config families
    n_candidates: int
    n_excluded_memory: int
    n_excluded_nan: int

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable(dict(self.__dict__))  # type: ignore[return-value]


def nearest_config(df: pd.DataFrame, prediction: Prediction, *, x: str | None = None,
                   max_memory: float | None = None, families: tuple[str, ...] | list[str] | None = None,
                   n_alternatives: int = 4) -> NearestConfig:
    """The sampled config whose x is nearest the predicted optimum in log space (ok rows only).

    Ties (the same architecture at several budgets) go to the largest budget, then the lowest loss.
    max_memory (bytes): rows whose measured peak or estimated memory exceeds it are excluded.
    """
    x_col = C.resolve_x(x) if x is not None else prediction.x_name
    if max_memory is not None and not (np.isfinite(max_memory) and max_memory > 0):
        raise ValueError(f"max_memory={max_memory!r} is invalid: expected a number of bytes > 0")
    rows = C.ok_rows(df)
    if families is not None:
        rows = rows[C.families(rows).isin(list(families))]
    n_excluded_memory = 0
    if max_memory is not None:
        over = (C.numeric(rows, C.PEAK_MEMORY_BYTES) > max_memory) | (C.numeric(rows, C.ESTIMATED_MEMORY_BYTES) > max_memory)
        n_excluded_memory = int(over.sum())
        rows = rows[~over]
    xs = C.numeric(rows, x_col)
    finite = np.isfinite(xs) & (xs > 0)
    n_excluded_nan = int((~finite).sum())
    rows, xs = rows[finite], xs[finite]
    if rows.empty:
        raise NotEnoughData(f"nearest_config: no ok trial with a positive {x_col!r}"
                            f"{f' within max_memory={max_memory:.4g} bytes' if max_memory is not None else ''}"
                            f" ({n_excluded_memory} excluded for memory, {n_excluded_nan} for NaN)")
    order = pd.DataFrame({
        "dist": np.abs(np.log(xs) - np.log(prediction.x_opt)),
        "budget": -np.nan_to_num(C.numeric(rows, C.BUDGET_FLOPS), nan=-np.inf),
        "loss": np.nan_to_num(C.numeric(rows, C.FINAL_VAL_LOSS), nan=np.inf),
        "pos": np.arange(len(rows))}).sort_values(["dist", "budget", "loss", "pos"])["pos"].to_numpy()
    fam_cols = [c for c in C.CONFIG_FAMILY_COLUMNS if c in rows.columns]
    fams = [tuple(C.jsonable(parse_param(v)) for v in r) for r in rows[fam_cols].itertuples(index=False)]
    chosen = int(order[0])
    row = rows.iloc[chosen]
    alternatives: list[dict[str, Any]] = []
    seen = {fams[chosen]}
    for pos in order[1:]:
        if len(alternatives) >= n_alternatives:
            break
        if fams[pos] not in seen:
            seen.add(fams[pos])
            alternatives.append({**dict(zip(fam_cols, fams[pos], strict=True)), "x": float(xs[pos]),
                                 "run_id": C.jsonable(rows[C.RUN_ID].iloc[pos]) if C.RUN_ID in rows else None,
                                 "log_distance": float(abs(np.log(xs[pos] / prediction.x_opt)))})
    params = {k: v for k, v in row.items() if str(k).startswith(C.PARAM_PREFIXES)}
    trainable, dropped = trainable_config(params, tokens=prediction.tokens_opt, flops=prediction.flops)
    loss = C.numeric(rows.iloc[[chosen]], C.FINAL_VAL_LOSS)[0]
    return NearestConfig(
        run_id=str(row[C.RUN_ID]) if C.RUN_ID in rows.columns else None, row_index=rows.index[chosen],
        x_name=x_col, x=float(xs[chosen]), x_opt=prediction.x_opt,
        log_distance=float(abs(np.log(xs[chosen] / prediction.x_opt))),
        family=dict(zip(fam_cols, fams[chosen], strict=True)),
        budget_label=str(row[C.BUDGET_LABEL]) if C.BUDGET_LABEL in rows.columns else None,
        final_val_loss=float(loss) if np.isfinite(loss) else None, trainable=trainable,
        dropped_params=dropped, alternatives=alternatives, n_candidates=int(len(rows)),
        n_excluded_memory=n_excluded_memory, n_excluded_nan=n_excluded_nan)


def _floats(values: list[float | None]) -> np.ndarray:
    """An array of the values (None, which callers filter out first, as NaN)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)
