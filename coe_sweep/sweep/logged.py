"""What the sweep logs to MLflow for one trial beside its result: its params and its tags.

Params: the flattened run spec (`model.*`, `train.*`, `data.*`, `horizon.*`) and the budget. Tags: the
budget label, the model family and whether the trial was simulated. The tag names are
coe_sweep.tracking.names' (the one place the MLflow layout is spelled).
"""

from __future__ import annotations

from typing import Any

from coe_sweep.search.candidates import TrialPlan
from coe_sweep.tracking.names import (
    PARAM_BUDGET_FLOPS,
    PARAM_BUDGET_LABEL,
    TAG_BUDGET_LABEL,
    TAG_FAMILY,
    TAG_SIMULATED,
    bool_tag,
)
from coe_sweep.trial import TrialIdentity


def trial_params(plan: TrialPlan, identity: TrialIdentity) -> dict[str, Any]:
    assert plan.run_spec is not None
    return {**plan.run_spec.flat_params(), PARAM_BUDGET_LABEL: identity.budget_label,
            PARAM_BUDGET_FLOPS: plan.budget_flops}


def trial_tags(plan: TrialPlan, identity: TrialIdentity, simulated: bool) -> dict[str, str]:
    assert plan.run_spec is not None
    return {TAG_BUDGET_LABEL: identity.budget_label, TAG_FAMILY: plan.run_spec.model.family,
            TAG_SIMULATED: bool_tag(simulated)}
