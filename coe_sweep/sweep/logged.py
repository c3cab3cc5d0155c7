"""What the sweep logs to MLflow for one trial beside its result: its params and its tags.

Params: the flattened run spec (`model.*`, `train.*` with train.seed = the trial's seed, `data.*`,
`horizon.*`), the budget, the arm and the seed. Tags: the budget label, the model family, the arm and whether
the trial was simulated (the tracker adds the config hash, the seed and the trial id, and names the run by the
trial id). The tag names are coe_sweep.tracking.names' (the one place the MLflow layout is spelled).
"""

from __future__ import annotations

from typing import Any

from coe_sweep.search.candidates import TrialPlan
from coe_sweep.tracking.names import (
    PARAM_ARM,
    PARAM_BUDGET_FLOPS,
    PARAM_BUDGET_LABEL,
    PARAM_SEED,
    TAG_ARM,
    TAG_BUDGET_LABEL,
    TAG_FAMILY,
    TAG_SIMULATED,
    bool_tag,
)
from coe_sweep.trial import TrialIdentity


def trial_params(plan: TrialPlan, identity: TrialIdentity) -> dict[str, Any]:
    assert plan.run_spec is not None
    return {**plan.run_spec.with_seed(identity.seed).flat_params(), PARAM_BUDGET_LABEL: identity.budget_label,
            PARAM_BUDGET_FLOPS: plan.budget_flops, PARAM_ARM: identity.arm, PARAM_SEED: identity.seed}


def trial_tags(plan: TrialPlan, identity: TrialIdentity, simulated: bool) -> dict[str, str]:
    assert plan.run_spec is not None
    return {TAG_BUDGET_LABEL: identity.budget_label, TAG_FAMILY: plan.run_spec.model.family,
            TAG_ARM: identity.arm, TAG_SIMULATED: bool_tag(simulated)}
