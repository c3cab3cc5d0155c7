"""The searchers hand out every seed of a config and teach Optuna the mean over them (no Ray cluster needed:
Tune's calls are made by hand, as its controller makes them)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from coe_sweep.search.candidates import budgets, plan_trial
from coe_sweep.search.feasibility import load_feasible_spec
from coe_sweep.spec import SweepSpec
from coe_sweep.sweep.ledger import Ledger
from coe_sweep.sweep.searchers import FINISHED, FeasibleOptunaSearch, GridSearch, identity_of
from coe_sweep.trial import FinishedTrial, RunResult
from runners.trainable import trial_identity

SPEC = """\
name: seeds
model: {n_heads: 2, d_expert: 16, n_layers: 1, n_experts: 4, n_shared: 1}
space: {iterations: {choice: [1, 2]}, top_k: {choice: [1, 2]}, d_model: {choice: [32, 64]}}
budget: {flops: [2e10]}
search: {algorithm: ALGO, seeds: 3, trials_per_budget: 2, seed: 0}
train: {batch_size: 4, seq_len: 32}
"""


def _spec(tmp_path: Path, algorithm: str) -> SweepSpec:
    path = tmp_path / "seeds.yaml"
    path.write_text(SPEC.replace("ALGO", algorithm))
    return load_feasible_spec(path)


def _searcher(spec: SweepSpec, ledger: Ledger) -> FeasibleOptunaSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return FeasibleOptunaSearch(spec, budgets(spec)[0], ledger, [("val_loss", "min")], 2)


def test_each_config_runs_every_seed_and_optuna_learns_the_mean(tmp_path: Path) -> None:
    spec, ledger = _spec(tmp_path, "random"), Ledger()
    searcher = _searcher(spec, ledger)
    configs = [searcher.suggest(f"t{i}") for i in range(6)]
    ids = [trial_identity(c) for c in configs]
    assert [i.seed for i in ids] == [0, 1, 2, 0, 1, 2]
    assert ids[0].config_hash == ids[2].config_hash != ids[3].config_hash
    assert [c["run_spec"]["train"]["seed"] for c in configs] == [0, 1, 2, 0, 1, 2]  # train.seed = the seed
    assert {i.key for i in ids} == set(ledger.running) and ids[0].arm in ("moe", "coe-C2")
    study = searcher._study
    for trial_id, loss in (("t0", 2.0), ("t1", 3.0)):
        searcher.on_trial_complete(trial_id, {"status": "ok", "val_loss": loss})
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING  # seed 2 still out
    searcher.on_trial_complete("t2", {"status": "ok", "val_loss": 4.0})
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE and study.trials[0].value == pytest.approx(3.0)
    searcher.on_trial_complete("t3", {"status": "ok", "val_loss": 1.0})
    searcher.on_trial_complete("t4", {"status": "diverged"})  # one failed seed fails the config
    searcher.on_trial_complete("t5", {"val_loss": 1.5, "step": 10}, error=False)  # no final report: pruned
    assert study.trials[-1].state == optuna.trial.TrialState.FAIL
    assert len(study.trials) == 2  # one Optuna trial per config, not per seed


def test_resumed_config_runs_only_its_missing_seeds(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "random")
    plan = plan_trial(spec, budgets(spec)[0], {"iterations": 2, "top_k": 1, "d_model": 32})
    done = FinishedTrial(identity_of(plan, 1), RunResult(status="ok", final_val_loss=2.0))
    ledger = Ledger.resumed_from({done.identity.key: done})
    searcher = _searcher(spec, ledger)
    searcher.warm_start([done], [])
    first = [trial_identity(searcher.suggest(f"t{i}")) for i in range(2)]
    assert {(i.config_hash, i.seed) for i in first} == {(plan.config_hash, 0), (plan.config_hash, 2)}


def test_grid_walks_every_seed_of_every_config_skipping_finished(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "grid")
    plans = [plan_trial(spec, budgets(spec)[0], {"iterations": c, "top_k": 1, "d_model": 32}) for c in (1, 2)]
    done = FinishedTrial(identity_of(plans[0], 1), RunResult(status="ok", final_val_loss=2.0))
    ledger = Ledger.resumed_from({done.identity.key: done})
    grid = GridSearch(plans, ledger, [("val_loss", "min")], seeds=3)
    handed = [grid.suggest(f"t{i}") for i in range(6)]
    assert handed[-1] == FINISHED
    keys = [trial_identity(c).key for c in handed[:-1]]
    assert keys == [(plans[0].config_hash, 0), (plans[0].config_hash, 2), (plans[1].config_hash, 0),
                    (plans[1].config_hash, 1), (plans[1].config_hash, 2)]
