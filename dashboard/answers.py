"""The dashboard's answers as pure functions of a trials frame: frontier, scaling, optimum, Pareto, arm comparisons.

Routers memoise these per (sweep, data version, params); the CLI (`coe-sweep pareto/optimal/compare`)
calls them directly, so the terminal and the API give the same numbers. Every function returns a
response model; "nothing to show" is a model with empty lists and a `message`, never an exception.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C
from coe_sweep.analysis import sanity
from coe_sweep.analysis.arms import arm_order
from coe_sweep.analysis.audit import AuditPoint
from coe_sweep.analysis.coelaw import CoeLaw
from coe_sweep.analysis.compare import SELECTION, compare_arms
from coe_sweep.analysis.isoflop import IsoFlopProfile, isoflop_profiles
from coe_sweep.analysis.laws import Optimum, ParametricFit
from coe_sweep.analysis.methods import LawSet, fit_methods
from coe_sweep.analysis.paired import LEVEL
from coe_sweep.analysis.pareto import pareto_by_level
from coe_sweep.analysis.scaling import NotEnoughData, ScalingFit, nearest_config, scaling_fit
from dashboard import serialize
from dashboard.schemas import (
    ArmOptimumOut,
    AuditOut,
    CoeLawOut,
    CompareOut,
    FormScoreOut,
    FrontierOut,
    IterationWorthOut,
    LawParamOut,
    MethodBudgetOut,
    MethodOut,
    MethodPredictionOut,
    NearestOut,
    Objective,
    OptimalOut,
    ParetoOut,
    ParetoPoint,
    PowerLawOut,
    PredictionOut,
    ScalingOut,
    ScalingPoint,
    SpreadOut,
)

log = logging.getLogger(__name__)
N_BOOT = 1000  # bootstrap resamples per budget (vertex intervals) and per scaling fit
LAW_N_BOOT = 200  # bootstrap refits of each parametric law (config groups resampled)
METHOD_TEXT = {
    "approach2": "Approach 2: a robust parabola per IsoFLOP budget, power laws of the vertices against compute",
    "approach3": "Approach 3: L = E + A/N^alpha + B/D^beta fitted to every finished trial (arms pooled)",
    "coe_law": "CoE/MoE law: Approach 3 with N_eff = N h(C; psi) S^gamma, the form kept by held-out error; "
               "the arm with the lowest predicted loss",
}


def finished(frame: pd.DataFrame, family: str | None = None) -> pd.DataFrame:
    """Status-ok trials with a finite final val loss (of one family if given): what every fit uses."""
    if frame.empty or C.FINAL_VAL_LOSS not in frame.columns:
        return frame.iloc[:0]
    ok = C.ok_rows(frame)
    ok = ok[np.isfinite(C.numeric(ok, C.FINAL_VAL_LOSS))]
    if family is not None and not ok.empty:
        ok = ok[C.families(ok) == family]
    return ok


def no_finished_message(frame: pd.DataFrame, family: str | None) -> str:
    which = f" of family {family}" if family else ""
    return (f"no finished trials{which} yet ({len(frame)} trial(s) in the sweep, none with status ok "
            "and a final val loss): nothing to fit")


def profiles(frame: pd.DataFrame, x: str, family: str | None) -> list[IsoFlopProfile]:
    rows = finished(frame, family)
    return [] if rows.empty else isoflop_profiles(rows, x=x, n_boot=N_BOOT)


def frontier(frame: pd.DataFrame, profs: list[IsoFlopProfile], *, sweep_id: str, version: int, x: str,
             family: str | None) -> FrontierOut:
    out = FrontierOut(sweep_id=sweep_id, data_version=version, x=x, family=family,
                      budgets=[serialize.frontier_budget(p) for p in profs])
    if not profs:
        out.message = no_finished_message(frame, family)
    elif not any(b.fit is not None and b.fit.x_opt is not None for b in out.budgets):
        out.message = "no level has a fitted vertex yet: " + "; ".join(
            f.text for b in out.budgets for f in b.flags if f.blocking)
    return out


def fit(profs: list[IsoFlopProfile]) -> ScalingFit | str:
    """The scaling fit, or the reason there is none (a message for the empty answer)."""
    if not profs:
        return "no finished trials yet: nothing to fit"
    try:
        return scaling_fit(profs, n_boot=N_BOOT)
    except NotEnoughData:
        return sanity.no_scaling_text(profs)


def _law(quantity: str, law: Any) -> PowerLawOut:
    return PowerLawOut(quantity=quantity, coefficient=serialize.finite(law.coef),
                       exponent=serialize.finite(law.exponent), coefficient_ci=serialize.finite_pair(law.coef_ci),
                       exponent_ci=serialize.finite_pair(law.exponent_ci))


def laws(frame: pd.DataFrame, family: str | None, active_profiles: list[IsoFlopProfile],
         active_fit: ScalingFit | str) -> LawSet | str:
    """Every method fitted on the finished trials (N = active params), or why not."""
    rows = finished(frame, family)
    if rows.empty:
        return no_finished_message(frame, family)
    return fit_methods(rows, active_profiles, active_fit, n_boot=LAW_N_BOOT)


def _audit(audit: AuditPoint | None) -> AuditOut | None:
    if audit is None:
        return None
    f = serialize.finite
    return AuditOut(held_out=audit.held_out, held_out_flops=f(audit.held_out_flops), reference=audit.reference,
                    n_opt_true=f(audit.n_opt_true), n_opt_pred=f(audit.n_opt_pred),
                    n_opt_rel_error=f(audit.n_opt_rel_error), loss_true=f(audit.loss_true),
                    loss_pred=f(audit.loss_pred), loss_error=f(audit.loss_error), note=audit.note)


def _budget_row(label: str, opt: Optimum) -> MethodBudgetOut:
    f = serialize.finite
    return MethodBudgetOut(budget_label=label, budget_flops=float(opt.flops), n_opt=f(opt.n_opt), d_opt=f(opt.d_opt),
                           loss_opt=f(opt.loss_opt), arm=opt.arm)


def _method(name: str, result: object, law_set: LawSet) -> MethodOut:
    out = MethodOut(method=name, description=METHOD_TEXT[name])
    if isinstance(result, str):
        out.message = result
        return out
    labels = [p.budget_label for p in law_set.profiles if serialize.finite(p.budget_flops)]
    out.per_budget = [_budget_row(lab, o) for lab, o in zip(labels, law_set.per_budget().get(name, []), strict=False)]
    out.audit = _audit(law_set.audits.get(name))
    out.warnings = list(getattr(result, "warnings", []))
    out.flags = [f for f in serialize.flags(sanity.method_flags(law_set)) if f.fit == name]
    if isinstance(result, ScalingFit):
        out.flags += serialize.flags(sanity.approach2_flags(result))
        out.fitter = f"isoflop parabolas, {result.loss_law.kind} loss law"
        out.n_exponent, out.n_exponent_ci = result.x_law.exponent, serialize.finite_pair(result.x_law.exponent_ci)
    elif isinstance(result, ParametricFit):
        out.fitter, out.form = result.method, result.form.name
        exponent, ci = result.n_exponent()
        out.n_exponent, out.n_exponent_ci = serialize.finite(exponent), serialize.finite_pair(ci)
        out.params = [LawParamOut(name=k, value=serialize.finite(v), ci=serialize.finite_pair(iv))
                      for k, (v, iv) in result.params().items()]
    return out


def _coe_law(law: CoeLaw) -> CoeLawOut:
    f = serialize.finite
    return CoeLawOut(form=law.fit.form.name, reason=law.reason, psi=f(law.psi), psi_ci=serialize.finite_pair(law.psi_ci),
                     psi_form=law.psi_form, summary=law.summary,
                     scores=[FormScoreOut(form=s.form, n_params=s.n_params, cv_rmse=f(s.cv_rmse),
                                          excess=f(s.excess), excess_se=f(s.excess_se), chosen=s.chosen)
                             for s in law.scores],
                     worth=[IterationWorthOut(from_c=w.from_c, to_c=w.to_c, pct=f(w.pct),
                                              pct_ci=serialize.finite_pair(w.pct_ci)) for w in law.worth])


def add_methods(out: ScalingOut, law_set: LawSet | str) -> ScalingOut:
    """The side-by-side methods, the CoE law's form and psi, and the cross-method warnings."""
    if isinstance(law_set, str):
        out.method_warnings = [law_set]
        return out
    fits = {"approach2": law_set.approach2, "approach3": law_set.approach3,
            "coe_law": law_set.coe.fit if isinstance(law_set.coe, CoeLaw) else law_set.coe}
    out.methods = [_method(name, result, law_set) for name, result in fits.items()]
    out.coe_law = _coe_law(law_set.coe) if isinstance(law_set.coe, CoeLaw) else None
    fitted = law_set.fitted()
    parametric = fitted.get("coe_law") or fitted.get("approach3")
    out.flops_per_token = parametric.flops_map.describe() if parametric is not None else None
    out.method_warnings = list(law_set.warnings)
    out.flags += [f for m in out.methods for f in m.flags if f not in out.flags]
    return out


def _optimum(opt: Optimum) -> ArmOptimumOut:
    f = serialize.finite
    return ArmOptimumOut(arm=opt.arm, n_opt=f(opt.n_opt), n_opt_ci=serialize.finite_pair(opt.n_opt_ci), d_opt=f(opt.d_opt),
                         loss_opt=f(opt.loss_opt), loss_opt_ci=serialize.finite_pair(opt.loss_opt_ci))


def method_predictions(law_set: LawSet, flops: float) -> list[MethodPredictionOut]:
    f, pair = serialize.finite, serialize.finite_pair
    out = []
    for p in law_set.predict(flops):
        spread = None if p.spread is None else SpreadOut(n_refits=p.spread.n_refits, n_opt_range=pair(p.spread.n_opt_range),
                                                         loss_range=pair(p.spread.loss_range))
        out.append(MethodPredictionOut(
            method=p.method, arm=p.arm, n_opt=f(p.n_opt), n_opt_ci=pair(p.n_opt_ci), d_opt=f(p.d_opt),
            d_opt_ci=pair(p.d_opt_ci), loss_opt=f(p.loss_opt), loss_opt_ci=pair(p.loss_opt_ci), reach=f(p.reach),
            reach_text=p.reach_text, audit=_audit(p.audit), spread=spread, warnings=list(p.warnings),
            arms=[_optimum(a) for a in p.arms]))
    return out


def scaling(frame: pd.DataFrame, profs: list[IsoFlopProfile], result: ScalingFit | str, *, sweep_id: str,
            version: int, x: str, family: str | None) -> ScalingOut:
    level_flags = {p.budget_label: sanity.profile_flags(p) for p in profs}
    points = [ScalingPoint(budget_label=p.budget_label, budget_flops=float(p.budget_flops), x_opt=float(p.x_opt),
                           x_opt_ci=serialize.finite_pair(p.x_opt_ci), loss_opt=serialize.finite(p.loss_opt),
                           tokens_opt=serialize.finite(p.tokens_opt), flagged=sanity.is_flagged(level_flags[p.budget_label]),
                           reasons=[f.text for f in level_flags[p.budget_label]])
              for p in profs if p.ok and p.x_opt is not None and serialize.finite(p.budget_flops)
              and serialize.finite(p.x_opt)]
    out = ScalingOut(sweep_id=sweep_id, data_version=version, x=x, family=family, points=points)
    if isinstance(result, str):
        out.message = no_finished_message(frame, family) if not profs else result
        return out
    out.used_budgets = list(result.budget_labels)
    out.skipped = dict(result.skipped)
    out.warnings = list(result.warnings)
    out.laws = [_law("x_opt", result.x_law)]
    if result.tokens_law is not None:
        out.laws.append(_law("tokens_opt", result.tokens_law))
    loss = result.loss_law
    out.laws.append(PowerLawOut(quantity="loss_opt", coefficient=serialize.finite(loss.A),
                                exponent=serialize.finite(-loss.alpha), offset=serialize.finite(loss.E) or 0.0,
                                exponent_ci=None if loss.alpha_ci is None else
                                serialize.finite_pair((-loss.alpha_ci[1], -loss.alpha_ci[0]))))
    flags = sanity.approach2_flags(result)
    out.flags, out.flagged = serialize.flags(flags), sanity.is_flagged(flags)
    return out


def optimal(frame: pd.DataFrame, result: ScalingFit | str, *, sweep_id: str, version: int, x: str,
            family: str | None, flops: float, max_memory_bytes: float | None,
            law_set: LawSet | str | None = None, profiles: list[IsoFlopProfile] | None = None) -> OptimalOut:
    """The predicted optimum at `flops` by every method, the nearest sampled config, and every flag: of the
    levels the laws rest on (`profiles`), of the laws, and of each prediction."""
    out = OptimalOut(sweep_id=sweep_id, data_version=version, x=x, family=family,
                     flops=flops, max_memory_bytes=max_memory_bytes)
    if isinstance(law_set, LawSet):
        out.methods = method_predictions(law_set, flops)
        out.method_warnings = [f"{m}: no fit: {why}" for m, why in law_set.reasons().items()] + list(law_set.warnings)
    elif isinstance(law_set, str):
        out.method_warnings = [law_set]
    if isinstance(result, str):
        out.message = no_finished_message(frame, family) if finished(frame, family).empty else result
        _flag_predictions(out, frame, None, law_set if isinstance(law_set, LawSet) else None, profiles)
        return out
    pred = result.predict(flops)
    out.prediction = PredictionOut(
        flops=pred.flops, x_name=pred.x_name, x_opt=serialize.finite(pred.x_opt),
        x_opt_ci=serialize.finite_pair(pred.x_opt_ci), tokens_opt=serialize.finite(pred.tokens_opt),
        tokens_opt_ci=serialize.finite_pair(pred.tokens_opt_ci), loss_opt=serialize.finite(pred.loss_opt),
        loss_opt_ci=serialize.finite_pair(pred.loss_opt_ci), ci=pred.ci,
        extrapolation_factor=serialize.finite(pred.extrapolation_factor), warnings=list(pred.warnings))
    _flag_predictions(out, frame, result, law_set if isinstance(law_set, LawSet) else None, profiles)
    try:
        near = nearest_config(finished(frame, family), pred, max_memory=max_memory_bytes)
    except NotEnoughData as exc:
        out.message = str(exc)
        return out
    out.nearest = NearestOut(
        run_id=near.run_id, x_name=near.x_name, x=serialize.finite(near.x),
        log_distance=serialize.finite(near.log_distance), budget_label=near.budget_label,
        final_val_loss=serialize.finite(near.final_val_loss),
        config={str(k).removeprefix("model."): serialize.scalar(v) for k, v in near.family.items()},
        trainable={str(section): {str(k): serialize.scalar(v) for k, v in values.items()}
                   for section, values in near.trainable.items()},
        alternatives=[{str(k).removeprefix("model."): serialize.scalar(v) for k, v in alt.items()}
                      for alt in near.alternatives],
        n_candidates=near.n_candidates, n_excluded_memory=near.n_excluded_memory)
    return out


def _flag_predictions(out: OptimalOut, frame: pd.DataFrame, result: ScalingFit | None, law_set: LawSet | None,
                      profiles: list[IsoFlopProfile] | None) -> None:
    """Sanity flags of the levels, the laws and every predicted loss at out.flops; flagged predictions lose their star."""
    a2 = out.prediction.loss_opt if out.prediction is not None else None
    losses = ([("approach2", a2)] if result is not None else []) + [(m.method, m.loss_opt) for m in out.methods]
    flags = [f for p in profiles or [] for f in sanity.profile_flags(p)]
    flags += sanity.prediction_flags(frame, law_set, losses, out.flops)
    if law_set is not None:
        flags += sanity.method_flags(law_set)
    if result is not None:
        flags += sanity.approach2_flags(result)
    flags = sanity.merge(flags)
    out.flags = serialize.flags(flags)
    if out.prediction is not None:
        out.prediction.flagged = sanity.is_flagged(f for f in flags if f.fit == "approach2")
    for m in out.methods:
        m.flagged = sanity.is_flagged(f for f in flags if f.fit == m.method)


# --- Pareto -------------------------------------------------------------------------------------
MIN_OBJECTIVES, MAX_OBJECTIVES = 2, 3


def parse_objectives(text: str) -> list[tuple[str, str]]:
    """'final_val_loss:min,peak_memory' -> [(column, direction)]; ValueError naming the bad part.

    Short names (val_loss, peak_memory, ...) are accepted; a missing direction takes the default.
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not MIN_OBJECTIVES <= len(parts) <= MAX_OBJECTIVES:
        raise ValueError(f"objectives={text!r} is invalid: expected {MIN_OBJECTIVES} to {MAX_OBJECTIVES} "
                         "comma-separated NAME[:min|max], e.g. final_val_loss:min,peak_memory_bytes:min")
    resolved: list[tuple[str, str]] = []
    for part in parts:
        name, _, direction = (s.strip() for s in part.partition(":"))
        try:
            column, default = C.resolve_objective(name)
        except ValueError:
            raise ValueError(f"objectives: {name!r} is unknown: expected names from "
                             f"{', '.join(C.accepted_objectives())}") from None
        direction = direction or default
        if direction not in C.DIRECTIONS:
            raise ValueError(f"objectives: direction {direction!r} of {name!r} is invalid: expected 'min' or 'max'")
        resolved.append((column, direction))
    columns = [c for c, _ in resolved]
    if len(set(columns)) != len(columns):
        raise ValueError(f"objectives={text!r} names a column twice: expected distinct objectives")
    return resolved


def _label(record: dict[str, Any], column: str) -> str | None:
    value = serialize.scalar(record.get(column))
    return None if value is None else str(value)


def _pareto_points(rows: pd.DataFrame, objectives: list[tuple[str, str]], on_front: bool) -> list[ParetoPoint]:
    columns = [c for c, _ in objectives]
    return [ParetoPoint(run_id=_label(r, C.RUN_ID), trial_id=_label(r, C.TRIAL_ID), on_front=on_front,
                        values={c: serialize.finite(r.get(c)) for c in columns},
                        budget_label=_label(r, C.BUDGET_LABEL), family=_label(r, C.FAMILY),
                        config=serialize.config_of(r))
            for r in rows.to_dict(orient="records")]


def pareto(frame: pd.DataFrame, filtered: pd.DataFrame, objectives: list[tuple[str, str]], *, sweep_id: str,
           version: int, filters: dict[str, Any], include_dominated: bool, pooled: bool = False) -> ParetoOut:
    """Pareto set of the ok trials of `filtered` (the frame after the caller's filters): one front per budget
    level, or one over every budget when `pooled`."""
    out = ParetoOut(sweep_id=sweep_id, data_version=version, pooled=pooled,
                    objectives=[Objective(column=c, direction=d) for c, d in objectives],
                    filters={k: serialize.scalar(v) for k, v in filters.items() if v is not None},
                    n_considered=0, front=[])
    rows = C.ok_rows(filtered) if not filtered.empty else filtered
    if rows.empty:
        any_ok = not frame.empty and not C.ok_rows(frame).empty
        out.message = "no finished trials match the filters" if any_ok else no_finished_message(frame, None)
        return out
    sets = pareto_by_level(rows, objectives, pooled=pooled, only_ok=False)
    front = pd.Index([]).append([s.indices for _, s in sets])
    out.n_considered, out.n_excluded_nan = len(rows), sum(s.n_excluded_nan for _, s in sets)
    out.front = _pareto_points(rows.loc[front], objectives, True)
    if include_dominated:
        out.dominated = _pareto_points(rows.drop(index=front), objectives, False)
    if not out.front:
        missing = [c for c, _ in objectives if not np.isfinite(C.numeric(rows, c)).any()]
        out.message = (f"no finished trial has a value for {', '.join(missing)}" if missing
                       else "no finished trial has finite values for every objective")
    return out


# --- arm comparisons ---------------------------------------------------------------------------
def spec_baseline(spec_yaml: str | None) -> str | None:
    """`analysis.baseline` of a sweep's logged spec YAML (None when absent or unreadable)."""
    if not spec_yaml:
        return None
    import yaml

    try:
        data = yaml.safe_load(spec_yaml)
    except yaml.YAMLError:
        return None
    analysis = data.get("analysis") if isinstance(data, dict) else None
    baseline = analysis.get("baseline") if isinstance(analysis, dict) else None
    return str(baseline) if baseline else None


def stored_spec_baseline(reader: Any, sweep_id: str) -> str | None:
    """`analysis.baseline` of the spec a sweep logged (reader: a TrackingStore); None when the sweep has no
    spec artifact (older or hand-written sweeps) or the store cannot give it: the default rule applies."""
    try:
        return spec_baseline(reader.spec_yaml(sweep_id))
    except Exception as exc:  # noqa: BLE001 - MLflow's, the store's or the filesystem's: all mean "no spec"
        log.debug("no spec baseline for %s: %s", sweep_id, exc)
        return None


def compare(frame: pd.DataFrame, *, sweep_id: str, version: int, baseline: str | None,
            spec_default: str | None = None) -> CompareOut:
    """Every arm against the baseline (the query's, else the spec's analysis.baseline, else moe / the
    first arm). ValueError naming the baseline when it is not an arm of the sweep."""
    rows = finished(frame)
    if rows.empty:
        return CompareOut(sweep_id=sweep_id, data_version=version, baseline=None, arms=[], level=LEVEL,
                          selection=SELECTION, budgets=[], equal_memory=[], equal_wall=[], frontiers=[],
                          multipliers=[], message=no_finished_message(frame, None))
    arms = arm_order(rows)
    chosen = baseline if baseline is not None else (spec_default if spec_default in arms else None)
    result = compare_arms(rows, chosen, n_boot=N_BOOT)
    out = CompareOut(
        sweep_id=sweep_id, data_version=version, baseline=result.baseline, arms=result.arms, level=result.level,
        selection=result.selection, budgets=[serialize.budget_compare(b) for b in result.budgets],
        equal_memory=[serialize.cap_compare(c) for c in result.equal_memory],
        equal_wall=[serialize.cap_compare(c) for c in result.equal_wall],
        frontiers=[serialize.arm_frontier(f) for f in result.frontiers],
        multipliers=[serialize.multiplier(m) for m in result.multipliers], notes=list(result.notes))
    if len(result.arms) < 2:
        out.message = result.notes[0] if result.notes else "only one arm has finished trials"
    return out
