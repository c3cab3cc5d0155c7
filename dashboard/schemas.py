"""Pydantic response models of the JSON API (what /openapi.json documents and schemathesis checks).

Values that come from MLflow params are free-form scalars (`Scalar`); everything derived (fits,
fronts, comparisons) has a typed shape. Conversion from frames and analysis objects lives in
`serialize.py`, never here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Scalar = str | int | float | bool | None
XAxis = Literal["params_active", "params_total", "tokens", "iterations"]
Family = Literal["moe", "coe", "dense"]
TrialStatus = Literal["ok", "diverged", "oom", "failed", "pruned", "running", "killed", "finished"]


class ErrorMessage(BaseModel):
    detail: str = Field(description="what was wrong, naming the parameter or resource")


class SweepOut(BaseModel):
    id: str
    name: str
    status: str
    counts: dict[str, int] = Field(description="trials by status")
    n_trials: int
    spec_hash: str | None = None
    simulated: bool = Field(False, description="losses from the simulated law (`launch --simulate`), not training")
    start_time: str | None = Field(None, description="ISO 8601, UTC")
    end_time: str | None = None


class SweepList(BaseModel):
    sweeps: list[SweepOut]
    message: str | None = None


class BudgetOut(BaseModel):
    budget_label: str
    budget_flops: float | None
    n_trials: int
    n_ok: int


class SweepDetail(SweepOut):
    data_version: int = Field(description="bumps whenever the cached trials change")
    running: bool
    n_loaded: int = Field(description="trial rows in the dashboard's cache")
    budgets: list[BudgetOut]
    columns: list[str] = Field(description="columns of the trials table (sortable)")
    page_refresh_s: float


class TrialPage(BaseModel):
    sweep_id: str
    data_version: int
    total: int = Field(description="rows matching the filters, before paging")
    offset: int
    limit: int
    sort: str
    order: Literal["asc", "desc"]
    columns: list[str]
    rows: list[dict[str, Scalar]]
    message: str | None = None


class FitFlagOut(BaseModel):
    """A sanity flag of one fit (coe_sweep.analysis.sanity): blocking ones mean the fit's optimum is no answer."""

    code: str = Field(description="too_few_points | not_convex | vertex_outside_range | edge_of_range | lopsided | "
                                  "bootstrap_unstable | min_below_measured | exponent_includes_zero | "
                                  "implausible_loss | too_few_levels")
    fit: str = Field(description="isoflop | approach2 | approach3 | coe_law")
    level: str | None = Field(None, description="the budget level of a level's fit")
    text: str
    blocking: bool = Field(description="true: drawn as flagged (dashed, no optimum star)")


class FrontierPoint(BaseModel):
    run_id: str | None
    trial_id: str | None = Field(None, description="<config hash[:8]>-s<seed>: the launch log's id, the MLflow run name")
    x: float
    loss: float
    family: str | None = None
    config: dict[str, Scalar] = Field(default_factory=dict)


class ParabolaFit(BaseModel):
    coef: list[float] = Field(description="(A, B, C): loss = A ln(x)^2 + B ln(x) + C")
    convex: bool
    x_opt: float | None
    loss_opt: float | None
    tokens_opt: float | None
    x_opt_ci: list[float] | None
    loss_opt_ci: list[float] | None
    ci: float
    boot_convex_fraction: float | None
    curve_x: list[float]
    curve_loss: list[float]


class FrontierBudget(BaseModel):
    budget_label: str
    budget_flops: float | None
    n_points: int
    best_run_id: str | None
    best_x: float | None
    best_loss: float | None
    points: list[FrontierPoint]
    fit: ParabolaFit | None
    warnings: list[str]
    notes: list[str]
    flags: list[FitFlagOut] = Field(default_factory=list)
    flagged: bool = Field(False, description="a blocking flag: no vertex to show as this level's optimum")


class FrontierOut(BaseModel):
    sweep_id: str
    data_version: int
    x: XAxis
    family: Family | None
    budgets: list[FrontierBudget]
    message: str | None = None


class PowerLawOut(BaseModel):
    """y = offset + coefficient * flops ** exponent, with bootstrap intervals."""

    quantity: str = Field(description="x_opt | tokens_opt | loss_opt")
    coefficient: float | None
    exponent: float | None
    offset: float = 0.0
    coefficient_ci: list[float] | None = None
    exponent_ci: list[float] | None = None


class ScalingPoint(BaseModel):
    budget_label: str
    budget_flops: float
    x_opt: float
    x_opt_ci: list[float] | None
    loss_opt: float | None
    tokens_opt: float | None
    flagged: bool = Field(False, description="this level's fit carries a blocking flag")
    reasons: list[str] = Field(default_factory=list, description="the level's flags, in words")


Method = Literal["approach2", "approach3", "coe_law"]


class MethodBudgetOut(BaseModel):
    budget_label: str
    budget_flops: float
    n_opt: float | None = Field(description="predicted optimal active params at this budget")
    d_opt: float | None = Field(description="predicted optimal tokens")
    loss_opt: float | None
    arm: str | None = Field(None, description="coe_law: the arm with the lowest predicted loss")


class LawParamOut(BaseModel):
    name: str
    value: float | None
    ci: list[float] | None


class AuditOut(BaseModel):
    """Leave-future-out: the method refitted without the largest budget, predicting it."""

    held_out: str
    held_out_flops: float | None
    reference: str = Field(description="vertex (the budget's own IsoFLOP vertex) or best trial")
    n_opt_true: float | None
    n_opt_pred: float | None
    n_opt_rel_error: float | None = Field(description="predicted / observed optimal N - 1")
    loss_true: float | None
    loss_pred: float | None
    loss_error: float | None = Field(description="predicted - observed best loss")
    note: str | None = None


class SpreadOut(BaseModel):
    """Drop-one-budget spread (>= 4 budgets): min and max of the prediction over refits each leaving one out."""

    n_refits: int
    n_opt_range: list[float] | None
    loss_range: list[float] | None


class MethodOut(BaseModel):
    method: Method
    description: str
    fitter: str | None = None
    form: str | None = None
    n_exponent: float | None = Field(None, description="N* grows as C^n_exponent")
    n_exponent_ci: list[float] | None = None
    params: list[LawParamOut] = Field(default_factory=list)
    per_budget: list[MethodBudgetOut] = Field(default_factory=list)
    audit: AuditOut | None = None
    warnings: list[str] = Field(default_factory=list)
    flags: list[FitFlagOut] = Field(default_factory=list)
    message: str | None = Field(None, description="why this method has no fit")


class FormScoreOut(BaseModel):
    form: str
    n_params: int
    cv_rmse: float | None = Field(description="held-out error: sqrt of the mean held-out Huber loss")
    excess: float | None = Field(description="mean held-out loss minus the best form's")
    excess_se: float | None = Field(description="standard error of that paired difference")
    chosen: bool


class IterationWorthOut(BaseModel):
    from_c: int
    to_c: int
    pct: float | None = Field(description="one more iteration is worth this % more active parameters")
    pct_ci: list[float] | None


class CoeLawOut(BaseModel):
    form: str
    reason: str
    scores: list[FormScoreOut]
    psi: float | None
    psi_ci: list[float] | None
    psi_form: str | None
    worth: list[IterationWorthOut]
    summary: str


class ScalingOut(BaseModel):
    sweep_id: str
    data_version: int
    x: XAxis
    family: Family | None
    points: list[ScalingPoint] = Field(description="per-budget vertices (used by the fit or not)")
    used_budgets: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="budget label -> why it was not used")
    laws: list[PowerLawOut] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    message: str | None = None
    methods: list[MethodOut] = Field(default_factory=list, description="every method side by side, in active params")
    coe_law: CoeLawOut | None = None
    flops_per_token: str | None = Field(None, description="how a hypothetical size maps to FLOPs per token")
    method_warnings: list[str] = Field(default_factory=list,
                                       description="across methods: disagreement, missing audit")
    flags: list[FitFlagOut] = Field(default_factory=list, description="sanity flags of the laws (every method)")
    flagged: bool = Field(False, description="the Approach 2 law carries a blocking flag: drawn dashed")


class PredictionOut(BaseModel):
    flops: float
    x_name: str
    x_opt: float | None
    x_opt_ci: list[float] | None
    tokens_opt: float | None
    tokens_opt_ci: list[float] | None
    loss_opt: float | None
    loss_opt_ci: list[float] | None
    ci: float
    extrapolation_factor: float | None
    warnings: list[str]
    flagged: bool = Field(False, description="a blocking flag: no star for this prediction")


class NearestOut(BaseModel):
    run_id: str | None
    x_name: str
    x: float | None
    log_distance: float | None
    budget_label: str | None
    final_val_loss: float | None
    config: dict[str, Scalar] = Field(description="the config family (iterations, top_k, experts, layers ...)")
    trainable: dict[str, dict[str, Scalar]] = Field(description="RunSpec.from_dict-able config at the predicted tokens")
    alternatives: list[dict[str, Scalar]]
    n_candidates: int
    n_excluded_memory: int


class ArmOptimumOut(BaseModel):
    arm: str | None
    n_opt: float | None
    n_opt_ci: list[float] | None
    d_opt: float | None
    loss_opt: float | None
    loss_opt_ci: list[float] | None


class MethodPredictionOut(BaseModel):
    method: Method
    arm: str | None
    n_opt: float | None
    n_opt_ci: list[float] | None
    d_opt: float | None
    d_opt_ci: list[float] | None
    loss_opt: float | None
    loss_opt_ci: list[float] | None
    reach: float | None = Field(description="flops / the largest trial's FLOPs")
    reach_text: str
    audit: AuditOut | None
    spread: SpreadOut | None
    warnings: list[str]
    arms: list[ArmOptimumOut] = Field(default_factory=list)
    flagged: bool = Field(False, description="a blocking flag on this method's fit or prediction")


class OptimalOut(BaseModel):
    sweep_id: str
    data_version: int
    x: XAxis
    family: Family | None
    flops: float
    max_memory_bytes: float | None
    prediction: PredictionOut | None = Field(None, description="predicted optimum (x, tokens, loss) and intervals")
    nearest: NearestOut | None = Field(None, description="the nearest trainable config sampled in the sweep")
    message: str | None = None
    ci: float = 0.95
    methods: list[MethodPredictionOut] = Field(default_factory=list,
                                               description="every method's optimum at `flops`, with its audit")
    method_warnings: list[str] = Field(default_factory=list)
    flags: list[FitFlagOut] = Field(default_factory=list,
                                    description="sanity flags of the laws and of every prediction at this budget")


class Objective(BaseModel):
    column: str
    direction: Literal["min", "max"]


class ParetoPoint(BaseModel):
    run_id: str | None
    trial_id: str | None = Field(None, description="<config hash[:8]>-s<seed>: the launch log's id, the MLflow run name")
    on_front: bool
    values: dict[str, float | None] = Field(description="objective column -> value")
    budget_label: str | None
    family: str | None
    config: dict[str, Scalar] = Field(default_factory=dict)


class ParetoOut(BaseModel):
    sweep_id: str
    data_version: int
    objectives: list[Objective]
    filters: dict[str, Scalar] = Field(default_factory=dict)
    n_considered: int = Field(description="ok trials after the filters")
    n_excluded_nan: int = 0
    pooled: bool = Field(False, description="false: one front per budget level (a trial is non-dominated within its "
                                            "level); true: one front over every budget")
    front: list[ParetoPoint] = Field(description="non-dominated trials: per level (ascending FLOPs) unless pooled, "
                                                 "each front sorted by the first objective")
    dominated: list[ParetoPoint] = Field(default_factory=list,
                                         description="the other considered trials (only with include_dominated=true)")
    message: str | None = None


class MeanCIOut(BaseModel):
    n: int = Field(description="seeds")
    mean: float
    sd: float | None
    ci: list[float] | None = Field(description="Student t interval over the seeds (None with one seed)")


class PairedDifferenceOut(BaseModel):
    """Arm minus baseline final val loss over the seeds both have (negative: the arm is better)."""

    seeds: list[int]
    n: int
    mean: float
    sd: float | None
    ci: list[float] | None = Field(description="Student t interval of the mean paired difference")
    p_value: float | None = Field(description="paired t-test, two-sided")
    level: float
    detectable: float | None = Field(description="minimum detectable |difference| (80% power) at this spread and n")
    seeds_needed: int | None = Field(description="seeds to detect the observed difference with 80% power")
    verdict: Literal["better", "worse", "no detectable difference", "not enough seeds"]
    text: str = Field(description="the verdict in words with its interval")


class CellOut(BaseModel):
    """One config of one arm at one budget: its final val loss per seed."""

    arm: str
    config: str = Field(description="config hash (prefix) of the config")
    budget_label: str
    budget_flops: float | None
    seeds: list[int]
    losses: list[float]
    peak_memory_bytes: float | None
    wall_s: float | None
    train_flops: float | None
    describe: dict[str, Scalar] = Field(default_factory=dict)


class ArmResultOut(BaseModel):
    arm: str
    cell: CellOut = Field(description="the arm's best config here (lowest mean loss over its seeds)")
    n_configs: int
    summary: MeanCIOut
    diff: PairedDifferenceOut | None = Field(description="vs the baseline (None for the baseline itself)")
    peak_memory_ratio: float | None = Field(description="arm / baseline measured peak memory")
    wall_s_ratio: float | None = Field(description="arm / baseline measured wall seconds")
    train_flops_ratio: float | None
    notes: list[str]


class BudgetCompareOut(BaseModel):
    budget_label: str
    budget_flops: float | None
    arms: list[ArmResultOut] = Field(description="the baseline first")
    notes: list[str]


class CapCompareOut(BaseModel):
    resource: Literal["peak_memory_bytes", "wall_s"]
    cap: float
    arms: list[ArmResultOut] = Field(description="each arm's best config within the cap, the baseline first")
    missing: list[str] = Field(description="arms with no config within the cap")


class ArmFrontierOut(BaseModel):
    """loss = E + k (C / c_ref)^-beta over the arm's levels (its best config per level)."""

    arm: str
    budgets_flops: list[float]
    losses: list[float]
    seeds: list[int]
    E: float | None
    k: float | None
    beta: float | None
    c_ref: float
    form: str
    notes: list[str]
    curve_flops: list[float]
    curve_loss: list[float]


class MultiplierOut(BaseModel):
    arm: str
    baseline: str
    flops: float = Field(description="the arm's budget level C")
    loss: float = Field(description="the arm's fitted loss at C")
    baseline_flops: float | None = Field(description="compute at which the baseline's frontier reaches it")
    multiplier: float | None = Field(description="baseline_flops / flops (> 1: the arm saves compute)")
    ci: list[float | None] | None = Field(description="bootstrap interval; upper None: unbounded")
    level: float
    extrapolated: bool
    n_boot: int
    text: str
    warnings: list[str]


class CompareOut(BaseModel):
    sweep_id: str
    data_version: int
    baseline: str | None
    arms: list[str] = Field(description="the baseline first")
    level: float
    selection: str = Field(description="how an arm's config is chosen and how seeds pair")
    budgets: list[BudgetCompareOut] = Field(description="equal training FLOPs: per budget level")
    equal_memory: list[CapCompareOut] = Field(description="equal measured peak memory: per cap")
    equal_wall: list[CapCompareOut] = Field(description="equal measured wall time: per cap")
    frontiers: list[ArmFrontierOut]
    multipliers: list[MultiplierOut]
    notes: list[str] = Field(default_factory=list)
    message: str | None = None


class TrialDetailOut(BaseModel):
    run_id: str
    sweep_id: str
    status: str | None
    reason: str | None = None
    params: dict[str, Scalar]
    finals: dict[str, float | None]
    tags: dict[str, str] = Field(default_factory=dict)
    curves: dict[str, list[list[float]]] = Field(description="metric -> [[step, value], ...]")
