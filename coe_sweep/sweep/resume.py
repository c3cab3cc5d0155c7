"""Resume: the trials earlier launches of a sweep finished, from its result records and from MLflow.

Resume never relies on Tune's own experiment restore (it keeps only trials finished before the last
experiment-state save): the sweep store's result records and MLflow are the truth. A record MLflow lacks
(the tracking store was down when it finished) is logged to MLflow again; a trial MLflow holds but the
store lacks (the sweep directory was full) is taken from MLflow.
"""

from __future__ import annotations

import logging

from coe_sweep.search.candidates import budgets, plan_trial
from coe_sweep.spec.schema import SweepSpec
from coe_sweep.sweep.ledger import TrialKey
from coe_sweep.sweep.logged import trial_params, trial_tags
from coe_sweep.sweep.store import SweepStore
from coe_sweep.tracking import SweepTracker, TrialRecord
from coe_sweep.trial import FinishedTrial, TrialIdentity

log = logging.getLogger(__name__)


def finished_trials(spec: SweepSpec, store: SweepStore, tracker: SweepTracker, *,
                    simulated: bool) -> dict[TrialKey, FinishedTrial]:
    """Finished trials of earlier launches, keyed by (config hash, seed); re-logs to MLflow what it missed."""
    records = store.read_results()
    logged = tracker.finished_trials()
    by_label = {b.label: b for b in budgets(spec)}
    for key, trial in records.items():
        identity = trial.identity
        if key in logged or identity.budget_label not in by_label:
            continue
        log.info("re-logging trial %s to MLflow from its result record", identity.trial_id)
        try:
            plan = plan_trial(spec, by_label[identity.budget_label], dict(identity.point))
        except (TypeError, ValueError, KeyError) as exc:  # params this spec cannot plan: keep the record only
            log.warning("trial %s: its result record's params cannot be planned (%s); kept, not re-logged",
                        identity.trial_id, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            continue
        run_id = tracker.start_trial(identity.config_hash, trial_params(plan, identity),
                                     trial_tags(plan, identity, simulated), seed=identity.seed)
        tracker.log_result(run_id, trial.result)
    for key, record in logged.items():
        if key not in records:
            records[key] = FinishedTrial(identity_from_mlflow(spec, record), record.result())
    return records


def identity_from_mlflow(spec: SweepSpec, record: TrialRecord) -> TrialIdentity:
    """A trial's identity from its MLflow run: the point from its `model.<f>` / `train.<f>` params (a
    bundle's choice index is not logged: such a trial is counted, not taught to the searcher)."""
    params = record.params
    point = {k: params.get(k, params.get(f"model.{k}")) for k in spec.space}
    return TrialIdentity(record.config_hash, record.seed, record.budget_label or "?", record.arm or "",
                         point={k: v for k, v in point.items() if v is not None})
