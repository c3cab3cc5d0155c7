"""Fits and frontiers over a sweep's trials frame: IsoFLOP profiles, scaling laws, arm comparisons, Pareto sets.

numpy/scipy/pandas only (no web, no MLflow, no torch). Column and objective names live in `columns`.
"""

from coe_sweep.analysis.compare import BudgetComparison, Comparison, compare_arms
from coe_sweep.analysis.isoflop import IsoFlopProfile, IsoFlopWarning, isoflop_profiles
from coe_sweep.analysis.pareto import (
    ParetoSet,
    first_front_mask,
    non_dominated_sort,
    pareto_front,
    pareto_set,
    resolve_objectives,
)
from coe_sweep.analysis.scaling import (
    LossLaw,
    NearestConfig,
    NotEnoughData,
    PowerLaw,
    Prediction,
    ScalingFit,
    nearest_config,
    scaling_fit,
)

__all__ = [
    "BudgetComparison", "Comparison", "IsoFlopProfile", "IsoFlopWarning", "LossLaw", "NearestConfig",
    "NotEnoughData", "ParetoSet", "PowerLaw", "Prediction", "ScalingFit", "compare_arms", "first_front_mask",
    "isoflop_profiles", "nearest_config", "non_dominated_sort", "pareto_front", "pareto_set",
    "resolve_objectives", "scaling_fit",
]
