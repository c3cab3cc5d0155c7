"""The searchers Tune asks for trials: Optuna (random, tpe, nsga2) over feasible configs, and grid search.

Infeasible suggestions are never trained: `FeasibleOptunaSearch` wraps Optuna's ask/tell, plans every
suggestion (coe_sweep.search.candidates.plan_trial), tells Optuna an infeasible one FAILED, records it
(with its reason) in the ledger as rejected and asks again, at most MAX_SUGGEST_ATTEMPTS times per trial;
after RANDOM_AFTER_ATTEMPTS misses it asks with a random sampler so that a converged TPE cannot stall. The
same loop skips configs already finished (a resumed sweep: Optuna is told their known values instead) and
configs running right now. `GridSearch` walks the planned feasible grid (coe_sweep.search.planned).

Each suggestion is a whole trial config (runners.trainable.trial_config: run spec + identity), and the
ledger learns the trial is running when it is suggested. Tune's own searcher checkpoints are not written:
resume reads the sweep's result records and MLflow instead.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from coe_sweep.search.candidates import Budget, TrialPlan, plan_trial
from coe_sweep.search.space import optuna_space
from coe_sweep.spec.schema import SweepSpec
from coe_sweep.sweep.ledger import Ledger
from coe_sweep.trial import FinishedTrial, RunResult, TrialIdentity, TrialStatus, objective_value
from runners.trainable import trial_config

log = logging.getLogger(__name__)

MAX_SUGGEST_ATTEMPTS = 64
RANDOM_AFTER_ATTEMPTS = 8
Objectives = list[tuple[str, str]]  # (objective name, 'min' | 'max')
FINISHED: Any = Searcher.FINISHED  # Tune's "no more trials" sentinel: a str, though suggest() says Optional[Dict]


def identity_of(plan: TrialPlan) -> TrialIdentity:
    assert plan.run_spec is not None
    return TrialIdentity(plan.config_hash, plan.run_spec.train.seed, plan.budget_label, point=dict(plan.sampled))


def sampler(algorithm: str, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 2)))
    raise ValueError(f"search.algorithm: found {algorithm!r}; expected one of grid, random, tpe, nsga2")


def objective_values(result: RunResult, objectives: Objectives) -> list[float] | None:
    """The objectives of an ok result, in order; None when it has no value for one of them."""
    if result.status != TrialStatus.OK:
        return None
    values = [objective_value(result, name) for name, _ in objectives]
    return None if any(v is None for v in values) else [float(v) for v in values if v is not None]


class FeasibleOptunaSearch(OptunaSearch):
    """OptunaSearch whose suggestions are always feasible, new, and planned (see the module docstring)."""

    def __init__(self, spec: SweepSpec, budget: Budget, ledger: Ledger, objectives: Objectives,
                 trials: int) -> None:
        names = [n for n, _ in objectives]
        modes = [m for _, m in objectives]
        multi = len(names) > 1
        seed = int(spec.search.seed)
        super().__init__(space=dict(optuna_space(spec)), metric=names if multi else names[0],
                         mode=modes if multi else modes[0], sampler=sampler(spec.search.algorithm, seed, trials),
                         study_name=f"{spec.name}-{budget.label}")
        self._spec, self._budget, self._ledger, self._objectives = spec, budget, ledger, objectives
        self._random = optuna.samplers.RandomSampler(seed=seed + 1)

    @property
    def _study(self) -> optuna.Study:
        assert self._ot_study is not None, "OptunaSearch builds its study when given a space"
        return self._ot_study

    @property
    def _distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        assert isinstance(self._space, dict)
        return self._space

    def warm_start(self, finished: list[FinishedTrial], rerun_first: list[dict[str, Any]]) -> None:
        """Tell Optuna the trials finished in earlier launches; queue the interrupted ones first."""
        for trial in finished:
            params = {k: trial.identity.point[k] for k in self._distributions if k in trial.identity.point}
            if len(params) != len(self._distributions):
                continue  # logged by MLflow only, sampled names unknown: counted, not taught
            values = objective_values(trial.result, self._objectives)
            state = optuna.trial.TrialState.COMPLETE if values else optuna.trial.TrialState.FAIL
            try:
                self._study.add_trial(optuna.trial.create_trial(
                    state=state, values=values, params=params, distributions=self._distributions))
            except ValueError as exc:  # a value outside today's space: skip teaching it
                log.debug("not warm-starting with %s: %s", trial.identity.trial_id, exc)
        for params in rerun_first:
            self._study.enqueue_trial(params, skip_if_exists=True)

    def _ask(self, attempt: int) -> optuna.trial.Trial:
        study = self._study
        if attempt < RANDOM_AFTER_ATTEMPTS:
            return study.ask(fixed_distributions=self._distributions)
        saved, study.sampler = study.sampler, self._random
        try:
            return study.ask(fixed_distributions=self._distributions)
        finally:
            study.sampler = saved

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        label, fail = self._budget.label, optuna.trial.TrialState.FAIL
        for attempt in range(MAX_SUGGEST_ATTEMPTS):
            ot_trial = self._ask(attempt)
            plan = plan_trial(self._spec, self._budget, dict(ot_trial.params))
            if not plan.feasible:
                self._study.tell(ot_trial, state=fail)
                self._ledger.reject(label, plan)
                continue
            identity = identity_of(plan)
            if (done := self._ledger.finished.get(identity.key)) is not None:
                values = objective_values(done.result, self._objectives)
                if values is None:
                    self._study.tell(ot_trial, state=fail)
                else:
                    self._study.tell(ot_trial, values)
                continue
            if identity.key in self._ledger.running:
                self._study.tell(ot_trial, state=fail)
                continue
            self._ot_trials[trial_id] = ot_trial
            self._ledger.start(identity, plan)
            assert plan.run_spec is not None
            return trial_config(plan.run_spec, identity)
        self._ledger.exhausted.add(label)
        log.warning("budget %s: no new feasible configuration in %d attempts; this budget ends here",
                    label, MAX_SUGGEST_ATTEMPTS)
        return FINISHED

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # Tune hands searchers flattened results; the final report is the one with a `status`
        if "status" in result:  # (it repeats the last evaluation's step)
            return
        if not isinstance(self.metric, list) and self.metric in result and trial_id in self._ot_trials:
            self._ot_trials[trial_id].report(result[self.metric], int(result.get("step", 0)))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.pop(trial_id, None)
        if ot_trial is None:
            return
        result = result or {}
        final = "status" in result and not error
        raw = [result.get(n) for n, _ in self._objectives] if final and result["status"] == "ok" else []
        values = [float(v) for v in raw if isinstance(v, int | float) and math.isfinite(v)]
        if raw and len(values) == len(raw):
            self._study.tell(ot_trial, values if len(values) > 1 else values[0])
        else:  # failed (diverged, oom, error) or stopped early (ASHA, max-failures)
            state = optuna.trial.TrialState.FAIL if error or final else optuna.trial.TrialState.PRUNED
            self._study.tell(ot_trial, state=state)

    def save(self, checkpoint_path: str) -> None:  # resume reads result records, not Tune's searcher state
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None


class GridSearch(Searcher):
    """Walks a list of feasible TrialPlans in order, skipping the finished ones."""

    def __init__(self, plans: list[TrialPlan], ledger: Ledger, objectives: Objectives) -> None:
        super().__init__(metric=objectives[0][0], mode=objectives[0][1])
        self._ledger = ledger
        self._queue = [p for p in plans if identity_of(p).key not in ledger.finished]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self._queue:
            return FINISHED
        plan = self._queue.pop(0)
        identity = identity_of(plan)
        self._ledger.start(identity, plan)
        assert plan.run_spec is not None
        return trial_config(plan.run_spec, identity)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        return None

    def save(self, checkpoint_path: str) -> None:  # resume reads result records, not Tune's searcher state
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None
