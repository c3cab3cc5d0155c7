"""Load-time feasibility of a whole spec: does every budget level keep at least one candidate?

Plans the grid (or, for a large or continuous space, a seeded random sample of it) at every level
with the analytic accounting and, when a level has no feasible candidate, names the check that
excludes everything, with the field to change: an invalid model in every combination (the field
ModelConfig complains about), constraints, the FLOPs/token band, the memory cap, max_steps, or a
budget too small for min_steps optimizer steps. Returns issues as (field path, found, expected);
`load_feasible_spec` hands the check to coe_sweep.spec.load_spec, which reports them with line numbers.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coe_sweep.search.candidates import CHECKS, budgets, feasibility_points, plan_trial
from coe_sweep.spec.load import Issue, load_spec
from coe_sweep.units import format_bytes

if TYPE_CHECKING:
    from coe_sweep.search.candidates import Budget, TrialPlan
    from coe_sweep.spec.schema import SweepSpec



def _describe(plan: TrialPlan) -> str:
    return ", ".join(f"{k}={v}" for k, v in plan.fields.items()) or "the fixed model"


def _model_field_loc(spec: SweepSpec, reason: str) -> tuple[Any, ...]:
    match = re.search(r"ModelConfig\.([a-z_]+)=", reason)
    name = match.group(1) if match else ""
    if name in spec.space:
        return ("space", name)
    if name in spec.fixed_model_fields():
        return ("model", name)
    return ("space",) if spec.space else ("model",)


def _constraint_eval_issues(spec: SweepSpec, values: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    for i, constraint in enumerate(spec.parsed_constraints()):
        try:
            constraint.evaluate(values)
        except (ValueError, KeyError) as exc:
            issues.append((("constraints", i), repr(constraint.text), f"an expression that can be evaluated: {exc}"))
    return issues


def _level_loc(spec: SweepSpec, budget: Budget) -> tuple[Any, ...]:
    return ("budget", "flops", budget.index) if budget.flops is not None else ("budget", "tokens")


def _level_found(budget: Budget) -> str:
    return repr(budget.flops) if budget.flops is not None else repr(budget.tokens)


def _blocking_issue(spec: SweepSpec, budget: Budget, plans: list[TrialPlan], sampled: bool) -> Issue:
    scope = f"any of {len(plans)} sampled candidates" if sampled else "any candidate"
    valid = [p for p in plans if "model" not in p.failed_checks]
    if not valid:
        reasons = Counter(p.reason for p in plans)
        reason, _ = reasons.most_common(1)[0]
        loc = _model_field_loc(spec, reason or "")
        return (loc, f"no valid model in {len(plans)} combination(s)",
                f"fields that make a valid ModelConfig for {scope}: {reason}")
    for check in CHECKS[1:]:
        if all(check in p.failed_checks for p in valid):
            return _check_issue(spec, budget, check, valid, scope)
    counts = Counter(p.failed_checks[0] for p in plans if p.failed_checks)
    summary = ", ".join(f"{n} {check}" for check, n in counts.most_common())
    return (_level_loc(spec, budget), _level_found(budget),
            f"a level where some candidate passes every check; rejected: {summary}")


def _check_issue(spec: SweepSpec, budget: Budget, check: str, valid: list[TrialPlan], scope: str) -> Issue:
    b = spec.budget
    if check == "seq_len":
        return (("train", "seq_len"), repr(spec.train.seq_len), "<= model.max_seq_len for some candidate")
    if check == "constraint":
        return (("constraints",), repr(spec.constraints), f"constraints that {scope} satisfies "
                f"(every candidate violates one, e.g. {_describe(valid[0])}: {valid[0].reason})")
    if check == "band":
        lo = min(valid, key=lambda p: p.train_flops_per_token)
        hi = max(valid, key=lambda p: p.train_flops_per_token)
        return (("budget", "flops_per_token"), repr(b.flops_per_token.model_dump(exclude_none=True)
                                                    if b.flops_per_token else None),
                f"a band that admits some candidate: train FLOPs/token range from {lo.train_flops_per_token:.4g} "
                f"({_describe(lo)}) to {hi.train_flops_per_token:.4g} ({_describe(hi)})")
    if check == "memory":
        small = min(valid, key=lambda p: p.memory_bytes)
        return (("budget", "max_memory"), f"{b.max_memory!r} ({format_bytes(b.max_memory or 0)})",
                f"a cap that admits some candidate: the smallest estimated training memory is "
                f"{format_bytes(small.memory_bytes)} ({small.memory_bytes} bytes, {_describe(small)})")
    if check == "max_steps":
        fewest = min(valid, key=lambda p: p.steps)
        return (("budget", "max_steps"), repr(b.max_steps),
                f"a limit that admits some candidate at budget {budget.label}: the fewest steps is "
                f"{fewest.steps} ({_describe(fewest)})")
    cheapest = min(valid, key=lambda p: p.train_flops_per_token * _tokens_per_step(p))
    need = cheapest.train_flops_per_token * _tokens_per_step(cheapest) * b.min_steps
    what = "FLOPs" if budget.flops is not None else "tokens"
    need_text = f"{need:.4g} FLOPs" if budget.flops is not None else f"{_tokens_per_step(cheapest) * b.min_steps} tokens"
    return (_level_loc(spec, budget), _level_found(budget),
            f"enough {what} for min_steps={b.min_steps} optimizer step(s) of some candidate: the cheapest "
            f"({_describe(cheapest)}) needs {need_text}")


def _tokens_per_step(plan: TrialPlan) -> int:
    assert plan.run_spec is not None
    return plan.run_spec.train.batch_size * plan.run_spec.train.seq_len


def feasibility_issues(spec: SweepSpec) -> list[Issue]:
    """Problems that leave a budget level without a single feasible candidate (empty: all good)."""
    from coe_sweep.search.space import MAX_GRID_POINTS, grid_size, is_enumerable

    issues: list[Issue] = []
    if spec.search.algorithm == "grid" and is_enumerable(spec) and grid_size(spec) > MAX_GRID_POINTS:
        return [(("space",), f"a grid of {grid_size(spec)} points",
                 f"at most {MAX_GRID_POINTS} grid points per budget for algorithm grid")]
    points, exhaustive = feasibility_points(spec)
    seen: set[Issue] = set()
    for budget in budgets(spec):
        plans = [plan_trial(spec, budget, point) for point in points]
        if budget.index == 0:
            first_valid = next((p for p in plans if p.run_spec is not None), None)
            if first_valid is not None and first_valid.run_spec is not None:
                rs = first_valid.run_spec
                values = {**rs.model.to_dict(), **{f"train.{k}": v for k, v in rs.train.__dict__.items()},
                          **{f"data.{k}": v for k, v in rs.data.__dict__.items()}}
                issues.extend(_constraint_eval_issues(spec, values))
                if issues:
                    return issues
        if any(p.feasible for p in plans):
            continue
        issue = _blocking_issue(spec, budget, plans, sampled=not exhaustive)
        if issue not in seen:
            seen.add(issue)
            issues.append(issue)
    return issues


def load_feasible_spec(path: str | os.PathLike[str], overrides: Sequence[str] = (), *,
                       simulated: bool = False) -> SweepSpec:
    """coe_sweep.spec.load_spec plus the feasibility check: what `plan`, `launch` and `status` load."""
    return load_spec(path, overrides, checks=(feasibility_issues,), simulated=simulated)
