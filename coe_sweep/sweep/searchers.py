"""The searchers Tune asks for trials: Optuna (random, tpe, nsga2) over feasible configs, and grid search.

A trial is one config at one seed: every config trains with seeds 0 .. search.seeds-1, each seed its own Tune
trial (train.seed = seed; seed i of every config pairs up).

`FeasibleOptunaSearch` keeps ONE Optuna trial per config. It asks Optuna for a config, plans it
(coe_sweep.search.candidates.plan_trial) and hands out that config's seeds one per `suggest`; when the last
of them completes it tells Optuna the MEAN of the seeds' objectives (a seed that failed makes the config
FAILED, one stopped early by ASHA makes it PRUNED). Infeasible suggestions are never trained: Optuna is told
they FAILED, the ledger records them as rejected, and it asks again, at most MAX_SUGGEST_ATTEMPTS times;
after RANDOM_AFTER_ATTEMPTS misses it asks with a random sampler so that a converged TPE cannot stall.
Configs whose seeds all finished earlier (a resumed sweep) are told their known mean; a config running right
now is skipped; a config with some seeds finished runs only the missing ones. `GridSearch` walks the planned
feasible grid, config by config, every seed of each.

Each suggestion is a whole trial config (runners.trainable.trial_config: run spec + identity), and the
ledger learns the trial is running when it is suggested. Tune's own searcher checkpoints are not written:
resume reads the sweep's result records and MLflow instead.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
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
_FAILED, _PRUNED = "failed", "pruned"  # a seed's outcome that is not objective values


def identity_of(plan: TrialPlan, seed: int) -> TrialIdentity:
    return TrialIdentity(plan.config_hash, seed, plan.budget_label, plan.arm, dict(plan.sampled))


def start(ledger: Ledger, plan: TrialPlan, seed: int) -> dict[str, Any]:
    """Record the trial (plan, seed) as running and return its Tune config."""
    assert plan.run_spec is not None
    identity = identity_of(plan, seed)
    ledger.start(identity, plan)
    return trial_config(plan.run_spec.with_seed(seed), identity)


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


def seed_outcome(result: RunResult, objectives: Objectives) -> list[float] | str:
    """What one seed tells its config: its objective values, or why it has none."""
    values = objective_values(result, objectives)
    if values is not None:
        return values
    return _PRUNED if result.status == TrialStatus.PRUNED else _FAILED


@dataclass
class _ConfigTrial:
    """One config's Optuna trial while its seeds run: the outcome of each seed so far."""

    ot_trial: optuna.trial.Trial
    seeds: int
    outcomes: dict[int, list[float] | str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.outcomes) == self.seeds


def tell_config(study: optuna.Study, ot_trial: optuna.trial.Trial, outcomes: list[list[float] | str]) -> None:
    """Tell Optuna a config's result: the mean of its seeds' objectives, else FAILED / PRUNED."""
    if any(o == _FAILED for o in outcomes):
        study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
    elif any(o == _PRUNED for o in outcomes):
        study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
    else:
        values = [float(sum(col) / len(col)) for col in zip(*(o for o in outcomes if not isinstance(o, str)),
                                                          strict=True)]
        study.tell(ot_trial, values if len(values) > 1 else values[0])


class FeasibleOptunaSearch(OptunaSearch):
    """OptunaSearch over feasible, new, planned configs, one Optuna trial per config (see the module docstring)."""

    def __init__(self, spec: SweepSpec, budget: Budget, ledger: Ledger, objectives: Objectives,
                 configs: int) -> None:
        names = [n for n, _ in objectives]
        modes = [m for _, m in objectives]
        multi = len(names) > 1
        seed = int(spec.search.seed)
        super().__init__(space=dict(optuna_space(spec)), metric=names if multi else names[0],
                         mode=modes if multi else modes[0], sampler=sampler(spec.search.algorithm, seed, configs),
                         study_name=f"{spec.name}-{budget.label}")
        self._spec, self._budget, self._ledger, self._objectives = spec, budget, ledger, objectives
        self._seeds = int(spec.search.seeds)
        self._random = optuna.samplers.RandomSampler(seed=seed + 1)
        self._pending: list[tuple[TrialPlan, int]] = []  # seeds of the current configs not handed out yet
        self._configs: dict[str, _ConfigTrial] = {}  # config hash -> its Optuna trial while seeds run
        self._keys: dict[str, tuple[str, int]] = {}  # Tune trial id -> (config hash, seed)

    @property
    def _study(self) -> optuna.Study:
        assert self._ot_study is not None, "OptunaSearch builds its study when given a space"
        return self._ot_study

    @property
    def _distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        assert isinstance(self._space, dict)
        return self._space

    def warm_start(self, finished: list[FinishedTrial], rerun_first: list[dict[str, Any]]) -> None:
        """Tell Optuna the configs whose seeds all finished in earlier launches (their mean); queue configs
        with unfinished seeds (interrupted, or not started yet) first."""
        by_config: dict[str, list[FinishedTrial]] = {}
        for trial in finished:
            by_config.setdefault(trial.identity.config_hash, []).append(trial)
        for trials in by_config.values():
            point = trials[0].identity.point
            params = {k: point[k] for k in self._distributions if k in point}
            if len(params) != len(self._distributions):
                continue  # logged by MLflow only, sampled names unknown: counted, not taught
            if len({t.identity.seed for t in trials}) < self._seeds:
                rerun_first = [params, *rerun_first]
                continue
            self._add_finished(params, [seed_outcome(t.result, self._objectives) for t in trials])
        for params in rerun_first:
            self._study.enqueue_trial(params, skip_if_exists=True)

    def _add_finished(self, params: dict[str, Any], outcomes: list[list[float] | str]) -> None:
        values = [float(sum(c) / len(c)) for c in zip(*(o for o in outcomes if not isinstance(o, str)), strict=True)]
        ok = values and all(not isinstance(o, str) for o in outcomes)
        try:
            self._study.add_trial(optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
                values=values if ok else None, params=params, distributions=self._distributions))
        except ValueError as exc:  # a value outside today's space: skip teaching it
            log.debug("not warm-starting with %s: %s", params, exc)

    def _ask(self, attempt: int) -> optuna.trial.Trial:
        study = self._study
        if attempt < RANDOM_AFTER_ATTEMPTS:
            return study.ask(fixed_distributions=self._distributions)
        saved, study.sampler = study.sampler, self._random
        try:
            return study.ask(fixed_distributions=self._distributions)
        finally:
            study.sampler = saved

    def _next_config(self) -> bool:
        """Ask Optuna until a config with seeds to run comes; queue those seeds. False: none within the attempts."""
        label, fail = self._budget.label, optuna.trial.TrialState.FAIL
        for attempt in range(MAX_SUGGEST_ATTEMPTS):
            ot_trial = self._ask(attempt)
            plan = plan_trial(self._spec, self._budget, dict(ot_trial.params))
            if not plan.feasible:
                self._study.tell(ot_trial, state=fail)
                self._ledger.reject(label, plan)
                continue
            keys = [(plan.config_hash, s) for s in range(self._seeds)]
            if plan.config_hash in self._configs or any(k in self._ledger.running for k in keys):
                self._study.tell(ot_trial, state=fail)  # proposed again while its seeds run
                continue
            done = {k[1]: seed_outcome(self._ledger.finished[k].result, self._objectives)
                    for k in keys if k in self._ledger.finished}
            if len(done) == self._seeds:  # finished in an earlier launch: tell its known mean
                tell_config(self._study, ot_trial, list(done.values()))
                continue
            self._configs[plan.config_hash] = _ConfigTrial(ot_trial, self._seeds, done)
            self._pending += [(plan, s) for s in range(self._seeds) if s not in done]
            return True
        return False

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self._pending and not self._next_config():
            self._ledger.exhausted.add(self._budget.label)
            log.warning("budget %s: no new feasible configuration in %d attempts; this budget ends here",
                        self._budget.label, MAX_SUGGEST_ATTEMPTS)
            return FINISHED
        plan, seed = self._pending.pop(0)
        self._ot_trials[trial_id] = self._configs[plan.config_hash].ot_trial
        self._keys[trial_id] = (plan.config_hash, seed)
        return start(self._ledger, plan, seed)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # Tune hands searchers flattened results; the final report is the one with a `status`; only seed 0's
        # intermediate values go to Optuna (one Optuna trial per config: its seeds would report the same steps)
        if "status" in result or self._keys.get(trial_id, ("", 0))[1] != 0:
            return
        if not isinstance(self.metric, list) and self.metric in result and trial_id in self._ot_trials:
            self._ot_trials[trial_id].report(result[self.metric], int(result.get("step", 0)))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._ot_trials.pop(trial_id, None)
        key = self._keys.pop(trial_id, None)
        config = None if key is None else self._configs.get(key[0])
        if key is None or config is None:
            return
        config.outcomes[key[1]] = self._outcome(result or {}, error)
        if config.complete:
            del self._configs[key[0]]
            tell_config(self._study, config.ot_trial, list(config.outcomes.values()))

    def _outcome(self, result: dict[str, Any], error: bool) -> list[float] | str:
        if error or "status" not in result:
            return _FAILED if error else _PRUNED  # no final report: stopped early (ASHA, a sweep stop)
        raw = [result.get(n) for n, _ in self._objectives] if result["status"] == "ok" else []
        values = [float(v) for v in raw if isinstance(v, int | float) and math.isfinite(v)]
        return values if raw and len(values) == len(raw) else _FAILED

    def save(self, checkpoint_path: str) -> None:  # resume reads result records, not Tune's searcher state
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None


class GridSearch(Searcher):
    """Walks a list of feasible TrialPlans in order, every seed of each, skipping the finished ones."""

    def __init__(self, plans: list[TrialPlan], ledger: Ledger, objectives: Objectives, seeds: int) -> None:
        super().__init__(metric=objectives[0][0], mode=objectives[0][1])
        self._ledger = ledger
        self._queue = [(p, s) for p in plans for s in range(seeds) if (p.config_hash, s) not in ledger.finished]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self._queue:
            return FINISHED
        plan, seed = self._queue.pop(0)
        return start(self._ledger, plan, seed)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        return None

    def save(self, checkpoint_path: str) -> None:  # resume reads result records, not Tune's searcher state
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None
