"""Every scaling method side by side, each with its extrapolation audit: what `optimal`, the API and the page serve.

Methods (`METHOD_NAMES`), all in active parameters N:
- approach2: IsoFLOP vertices per budget, power laws through them (`scaling.scaling_fit`);
- approach3: the Chinchilla form over every finished trial (`laws.fit_approach3`);
- coe_law: the CoE/MoE law (`coelaw.fit_coe_law`); its headline is the arm with the lowest
  predicted loss at the budget, every arm's optimum is listed too.

`fit_methods` fits them once; `LawSet.per_budget()` gives each method's optimal N, D and loss at
every budget, `LawSet.predict(flops)` at any budget with the interval, how far past the largest
trial it reaches, and the audit (`audit.py`): leave-future-out (each method refitted from scratch
without the largest budget, which it then predicts) and, with >= 4 budgets, the spread of the
prediction over refits that each drop one budget (parametric laws: batched refits from the full
fit). A warning is added when Approach 2 and 3 disagree on N* at the largest budget by > 10%.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.analysis import parametric as P
from coe_sweep.analysis.audit import AuditPoint, Spread, diff, rel_error, value_range
from coe_sweep.analysis.coelaw import CoeLaw, fit_coe_law
from coe_sweep.analysis.isoflop import IsoFlopProfile, fit_profile
from coe_sweep.analysis.lawdata import LawData, law_data
from coe_sweep.analysis.laws import N_BOOT, Optimum, ParametricFit, fit_approach3
from coe_sweep.analysis.levels import DEFAULT_TOL_LOG
from coe_sweep.analysis.scaling import NotEnoughData, ScalingFit, scaling_fit

METHOD_NAMES = ("approach2", "approach3", "coe_law")
DISAGREE_REL = 0.10
MIN_SPREAD_BUDGETS = 4
AUDIT_N_BOOT = 20  # Approach 2 refits of the audit need only their point estimates


@dataclass
class MethodPrediction:
    method: str
    flops: float
    arm: str | None
    n_opt: float | None
    n_opt_ci: tuple[float, float] | None
    d_opt: float | None
    d_opt_ci: tuple[float, float] | None
    loss_opt: float | None
    loss_opt_ci: tuple[float, float] | None
    reach: float  # flops / the largest trial's FLOPs
    reach_text: str
    audit: AuditPoint | None
    spread: Spread | None
    warnings: list[str] = field(default_factory=list)
    arms: list[Optimum] = field(default_factory=list)  # coe_law: every arm's optimum

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("audit", "spread", "arms")}
        out.update(audit=self.audit.to_dict() if self.audit else None, arms=[a.to_dict() for a in self.arms],
                   spread=self.spread.to_dict() if self.spread else None)
        return C.jsonable(out)  # type: ignore[return-value]


def reach_text(flops: float, lo: float, hi: float) -> str:
    """How far past the trials' FLOPs [lo, hi] a prediction at `flops` reaches, in words."""
    if flops > hi:
        return f"{flops / hi:.3g}x beyond the largest trial's FLOPs"
    if flops < lo:
        return f"{lo / flops:.3g}x below the smallest trial's FLOPs"
    return "within the trials' FLOPs range"


@dataclass
class LawSet:
    profiles: list[IsoFlopProfile]  # params_active profiles (the audit's references)
    approach2: ScalingFit | str
    approach3: ParametricFit | str
    coe: CoeLaw | str
    data: LawData = field(repr=False)
    max_trial_flops: float
    min_trial_flops: float
    audits: dict[str, AuditPoint | None] = field(default_factory=dict)
    drop_one: dict[str, list[Any]] = field(default_factory=dict)  # method -> refits (ScalingFit | theta)
    warnings: list[str] = field(default_factory=list)

    def fitted(self) -> dict[str, Any]:
        """method -> its fit, for the methods that have one."""
        fits = {"approach2": self.approach2, "approach3": self.approach3,
                "coe_law": self.coe.fit if isinstance(self.coe, CoeLaw) else self.coe}
        return {k: v for k, v in fits.items() if not isinstance(v, str)}

    def reasons(self) -> dict[str, str]:
        """method -> why it has no fit."""
        return {k: v for k, v in (("approach2", self.approach2), ("approach3", self.approach3), ("coe_law", self.coe))
                if isinstance(v, str)}

    def point(self, method: str, flops: float, fit: Any = None) -> tuple[Optimum | None, list[Optimum]]:
        """(headline optimum, every arm's optimum) of one method at `flops`; `fit` overrides the stored fit."""
        fit = fit if fit is not None else self.fitted().get(method)
        if fit is None:
            return None, []
        if isinstance(fit, ScalingFit):
            p = fit.predict(flops)
            return Optimum(flops, None, p.x_opt, p.x_opt_ci, p.tokens_opt or float("nan"), p.tokens_opt_ci,
                           p.loss_opt, p.loss_opt_ci), []
        if method == "coe_law":
            arms = [fit.optimum(flops, arm) for arm in sorted(fit.arm_knobs)]
            return (min(arms, key=lambda o: o.loss_opt) if arms else fit.optimum(flops)), arms
        return fit.optimum(flops), []

    def per_budget(self) -> dict[str, list[Optimum]]:
        """method -> its optimum at every budget level (ascending), for the side-by-side table."""
        levels = [p.budget_flops for p in self.profiles if np.isfinite(p.budget_flops)]
        return {m: [opt for f in levels if (opt := self.point(m, f)[0]) is not None] for m in self.fitted()}

    def spread(self, method: str, flops: float) -> Spread | None:
        refits = self.drop_one.get(method) or []
        if not refits:
            return None
        points = [self.point(method, flops, fit)[0] for fit in refits]
        return Spread(method, len(points), value_range([p.n_opt if p else None for p in points]),
                      value_range([p.loss_opt if p else None for p in points]))

    def predict(self, flops: float) -> list[MethodPrediction]:
        if not (isinstance(flops, (int, float, np.number)) and np.isfinite(flops) and flops > 0):
            raise ValueError(f"flops={flops!r} is invalid: expected a finite number > 0 (training FLOPs)")
        reach = float(flops) / self.max_trial_flops if self.max_trial_flops > 0 else float("nan")
        out = []
        for method, fit in self.fitted().items():
            opt, arms = self.point(method, float(flops))
            assert opt is not None
            out.append(MethodPrediction(
                method, float(flops), opt.arm, opt.n_opt, opt.n_opt_ci, opt.d_opt, opt.d_opt_ci, opt.loss_opt,
                opt.loss_opt_ci, reach, reach_text(float(flops), self.min_trial_flops, self.max_trial_flops),
                self.audits.get(method), self.spread(method, float(flops)),
                list(fit.warnings), arms))
        return out


def _future_mask(data: LawData, held: IsoFlopProfile, second_flops: float | None) -> np.ndarray:
    """Trials of the held-out (largest) level, and any trial above the level below it."""
    above = data.flops > (second_flops * np.exp(DEFAULT_TOL_LOG) if second_flops else 0.0)
    mask: np.ndarray = (data.budget == held.budget_label) | above
    return mask


def _reference(held: IsoFlopProfile) -> tuple[str, float, float]:
    if held.ok:
        return "vertex", float(held.x_opt), float(held.loss_opt)  # type: ignore[arg-type]
    return "best trial", float(held.best_x), float(held.best_loss)


def _arm_profile(data: LawData, held: IsoFlopProfile, arm: str) -> IsoFlopProfile:
    """The held-out budget's IsoFLOP profile of one arm's trials (the CoE law predicts per arm)."""
    mask = (data.budget == held.budget_label) & (data.arm == arm)
    rows = pd.DataFrame({C.PARAMS_ACTIVE: data.n[mask], C.FINAL_VAL_LOSS: data.loss[mask], C.TOKENS: data.d[mask]})
    if rows.empty:
        return held
    return fit_profile(f"{held.budget_label} ({arm})", held.budget_flops, rows, n_boot=AUDIT_N_BOOT)


def _audit(method: str, opt: Optimum | None, held: IsoFlopProfile, note: str | None = None) -> AuditPoint:
    kind, n_true, loss_true = _reference(held)
    n_pred = opt.n_opt if opt else None
    loss_pred = opt.loss_opt if opt else None
    return AuditPoint(method, held.budget_label, float(held.budget_flops), kind, n_true, n_pred,
                      rel_error(n_pred, n_true), loss_true, loss_pred, diff(loss_pred, loss_true), note)


def _a2_refit(profiles: list[IsoFlopProfile]) -> ScalingFit | str:
    try:
        return scaling_fit(profiles, n_boot=AUDIT_N_BOOT)
    except NotEnoughData as exc:
        return str(exc)


def _parametric_refit(fit: ParametricFit, data: LawData, keep: np.ndarray, scratch: bool) -> ParametricFit | str:
    try:
        if scratch:
            theta = P.fit(fit.form, data.subset(keep), fit.method)  # type: ignore[arg-type]
        else:
            theta = P.refit(fit.form, data, fit.theta, keep[None].astype(float))[0]
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        return f"refit failed: {exc}"
    return dataclasses.replace(fit, theta=theta, boot=theta[None], warnings=[])


def _add_audits(laws: LawSet) -> None:
    """Leave-future-out for every method; drop-one-budget refits with >= MIN_SPREAD_BUDGETS budgets."""
    usable = [p for p in laws.profiles if np.isfinite(p.budget_flops) and p.n_points > 0]
    if len(usable) < 3:
        laws.warnings.append(f"no leave-future-out audit: it needs >= 3 budget levels, the sweep has {len(usable)}")
        return
    held, second = usable[-1], usable[-2].budget_flops
    future = _future_mask(laws.data, held, second)
    for method, fit in laws.fitted().items():
        if isinstance(fit, ScalingFit):
            refit: Any = _a2_refit([p for p in laws.profiles if p.budget_label != held.budget_label])
        else:
            refit = _parametric_refit(fit, laws.data, ~future, scratch=True)
        opt = laws.point(method, held.budget_flops, refit)[0] if not isinstance(refit, str) else None
        reference = _arm_profile(laws.data, held, opt.arm) if opt is not None and opt.arm is not None else held
        laws.audits[method] = _audit(method, opt, reference, refit if isinstance(refit, str) else None)
    if len(usable) < MIN_SPREAD_BUDGETS:
        return
    for method, fit in laws.fitted().items():
        if isinstance(fit, ScalingFit):
            refits = [_a2_refit([q for q in laws.profiles if q.budget_label != p.budget_label]) for p in usable]
            laws.drop_one[method] = [r for r in refits if not isinstance(r, str)]
            continue
        masks = np.stack([(laws.data.budget != p.budget_label).astype(float) for p in usable])
        thetas = P.refit(fit.form, laws.data, fit.theta, masks)
        laws.drop_one[method] = [dataclasses.replace(fit, theta=t, boot=t[None], warnings=[]) for t in thetas]


def _add_disagreement(laws: LawSet) -> None:
    a2, a3 = laws.approach2, laws.approach3
    if isinstance(a2, str) or isinstance(a3, str) or not laws.profiles:
        return
    flops = max(a2.budgets_flops)
    n2, n3 = a2.predict(flops).x_opt, a3.optimum(flops).n_opt
    if abs(n2 / n3 - 1.0) > DISAGREE_REL:
        laws.warnings.append(f"Approach 2 and Approach 3 disagree on the optimal N at the largest budget "
                             f"({flops:.3g} FLOPs) by {abs(n2 / n3 - 1.0):.0%} (> {DISAGREE_REL:.0%}): "
                             f"{n2:.4g} vs {n3:.4g} active params; trust neither beyond the data without the audit")


def fit_methods(frame: pd.DataFrame, profiles: list[IsoFlopProfile], approach2: ScalingFit | str | None = None, *,
                n_boot: int = N_BOOT, seed: int = 0, ci: float = 0.95) -> LawSet:
    """Fit every method on a trials frame (status-ok rows are used); `profiles` are its params_active
    IsoFLOP profiles and `approach2` their scaling fit when the caller already has it."""
    if approach2 is None:
        approach2 = _a2_refit(profiles) if profiles else "no finished trials yet: nothing to fit"
        if not isinstance(approach2, str):
            approach2 = scaling_fit(profiles, n_boot=1000, seed=seed, ci=ci)
    data = law_data(frame)
    fits: dict[str, Any] = {}
    for name, fitter in (("approach3", fit_approach3), ("coe_law", fit_coe_law)):
        try:
            fits[name] = fitter(data, n_boot=n_boot, seed=seed, ci=ci)
        except ValueError as exc:
            fits[name] = str(exc)
    flops = data.flops[np.isfinite(data.flops)]
    laws = LawSet(profiles, approach2, fits["approach3"], fits["coe_law"], data,
                  float(flops.max()) if flops.size else float("nan"), float(flops.min()) if flops.size else float("nan"))
    _add_audits(laws)
    _add_disagreement(laws)
    return laws
