"""Response models of the researcher views: fields and aggregates, curves, optimisation history,
importance, routing, the trial view. (The sweep/fit/compare models are in schemas.py.)"""

from __future__ import annotations

from pydantic import BaseModel, Field

from dashboard.schemas import Scalar

Grid = list[list[float | None]]


class FieldsOut(BaseModel):
    sweep_id: str
    data_version: int
    arms: list[str] = Field(description="arms of the sweep, in order of first appearance")
    varying: list[str] = Field(description="config fields that take more than one value in this sweep")
    table: list[str] = Field(description="the trials table's columns: identity, every varying field, results")
    colour_by: list[str] = Field(description="fields a chart can colour by")
    budgets: list[str]


class AggregatePage(BaseModel):
    sweep_id: str
    data_version: int
    by: str = Field(description="what rows are grouped by: config (a config's seeds) at one budget")
    columns: list[str]
    rows: list[dict[str, Scalar]]
    message: str | None = None


class CurveOut(BaseModel):
    run_id: str
    trial_id: str | None
    arm: str | None
    budget_label: str | None
    status: str | None
    tokens_per_step: float | None = Field(description="batch_size x seq_len: tokens = step x this")
    fields: dict[str, Scalar] = Field(description="the trial's varying fields (for colouring)")
    points: dict[str, list[list[float]]] = Field(description="metric -> [[step, value], ...]")


class CurvesOut(BaseModel):
    sweep_id: str
    data_version: int
    total: int = Field(description="trials matching the filters")
    curves: list[CurveOut]
    message: str | None = None


class HistoryPoint(BaseModel):
    order: int = Field(description="1-based position of the trial in start order within its budget")
    trial_id: str | None
    run_id: str
    arm: str | None
    status: str | None
    value: float | None
    best: float | None = Field(description="best value so far in this budget")


class HistoryBudget(BaseModel):
    budget_label: str
    points: list[HistoryPoint]


class HistoryOut(BaseModel):
    sweep_id: str
    data_version: int
    objective: str
    budgets: list[HistoryBudget]
    message: str | None = None


class ImportanceBudget(BaseModel):
    budget_label: str
    budget_flops: float | None
    n_trials: int
    evaluator: str
    importances: dict[str, float]
    message: str | None = None


class ImportanceOut(BaseModel):
    sweep_id: str
    data_version: int
    evaluator: str
    budgets: list[ImportanceBudget]
    message: str | None = None


class StatSpreadOut(BaseModel):
    mean: Grid = Field(description="[layer][iteration]")
    sd: Grid
    n: list[list[int]]


class SummarySpreadOut(BaseModel):
    mean: float
    sd: float | None
    n: int


class ArmRoutingOut(BaseModel):
    arm: str
    n_trials: int
    n_layers: int
    n_iterations: int
    stats: dict[str, StatSpreadOut] = Field(description="entropy, overlap_next, max_load, min_load")
    load_profile: list[list[list[float]]] = Field(description="[layer][iteration][rank]: mean load of the "
                                                              "rank-th busiest expert (1.0 = balanced)")
    summary: dict[str, SummarySpreadOut]


class RoutingOut(BaseModel):
    sweep_id: str
    data_version: int
    arms: list[ArmRoutingOut]
    message: str | None = None


class TrialRoutingOut(BaseModel):
    n_layers: int
    n_iterations: int
    grids: dict[str, Grid]
    loads: list[list[list[float]]] = Field(description="[layer][iteration][expert]: tokens over the mean")
    summary: dict[str, float]


class MemoryOut(BaseModel):
    peak_measured_bytes: float | None
    estimated_bytes: float | None
    allocated_after_step_bytes: float | None = Field(description="allocated after a step: the paper's 'memory'")
    ratio: float | None = Field(description="measured / estimated")


class TrialViewOut(BaseModel):
    sweep_id: str
    sweep_name: str
    run_id: str
    trial_id: str | None
    arm: str | None
    seed: int | None
    config_hash: str | None
    budget_label: str | None
    budget_flops: float | None
    status: str | None
    reason: str | None
    simulated: bool
    config: dict[str, Scalar] = Field(description="every run-spec field (model./train./data./horizon.)")
    finals: dict[str, float | None] = Field(description="final metrics, routing.* left out (see routing)")
    tokens_per_step: float | None
    curves: dict[str, list[list[float | None]]] = Field(description="metric -> [[step, tokens, value], ...]")
    memory: MemoryOut
    routing: TrialRoutingOut | None
    mlflow_url: str | None = Field(description="the run in the MLflow UI")
    mlflow_hint: str | None = Field(description="how to open it when the store is a local file")
