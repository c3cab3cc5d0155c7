"""MLflow tracking for coe-sweep: the only package that imports mlflow.

Writer (driver side): `SweepTracker` lays out one sweep as DESIGN.md's "MLflow layout" says, with
retried, journaled (durable) writes. Reader: `TrackingStore` lists sweeps and returns trials as a
pandas frame for the dashboard, `coe-sweep status` and coe_sweep.analysis.
"""

from coe_sweep.tracking.connection import check_reachable
from coe_sweep.tracking.journal import RetryPolicy
from coe_sweep.tracking.names import FINAL_METRICS, STEP_METRICS
from coe_sweep.tracking.records import (
    NotFound,
    SweepNotFound,
    SweepSummary,
    TrackingError,
    TrackingUnavailable,
    TrialDetail,
    TrialNotFound,
    TrialRecord,
)
from coe_sweep.tracking.store import TrackingStore
from coe_sweep.tracking.writer import SweepTracker

__all__ = [
    "FINAL_METRICS", "STEP_METRICS", "NotFound", "RetryPolicy", "SweepNotFound", "SweepSummary",
    "SweepTracker", "TrackingError", "TrackingStore", "TrackingUnavailable", "TrialDetail", "TrialNotFound",
    "TrialRecord", "check_reachable",
]
