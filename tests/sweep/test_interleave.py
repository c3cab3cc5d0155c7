"""Budgets interleaved in one Tune experiment: the dispatch between per-budget searchers and ASHA's per-budget
rungs (no Ray cluster needed: Tune's calls are made by hand, as its controller makes them; the searchers,
Optuna studies and ASHA schedulers are the real ones)."""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import optuna
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from coe_sweep.search.candidates import budgets
from coe_sweep.search.feasibility import load_feasible_spec
from coe_sweep.search.planned import planned_trials
from coe_sweep.spec import SweepSpec
from coe_sweep.sweep.interleave import FINISHED, InterleavedSearch
from coe_sweep.sweep.ledger import Ledger
from coe_sweep.sweep.scheduler import GroupedASHA
from coe_sweep.sweep.searchers import FeasibleOptunaSearch, GridSearch
from coe_sweep.trial import TrialIdentity
from runners.trainable import trial_identity

SPEC = """\
name: mix
model: {n_heads: 2, d_expert: 16, n_layers: 1, n_experts: 4, n_shared: 1}
space: {iterations: {choice: [1, 2]}, top_k: {choice: [1, 2]}, d_model: {choice: [32, 64]}}
budget: {flops: [2e10, 6e10]}
search: {algorithm: ALGO, seeds: 2, trials_per_budget: 3, seed: 0}
train: {batch_size: 4, seq_len: 32}
"""


def _spec(tmp_path: Path, algorithm: str) -> SweepSpec:
    path = tmp_path / "mix.yaml"
    path.write_text(SPEC.replace("ALGO", algorithm))
    return load_feasible_spec(path)


def test_longest_trials_first_each_budget_its_own_searcher_and_count(tmp_path: Path) -> None:
    """The 6e10 trials go first, then the 2e10 ones fill the slots; each budget gets exactly its trials,
    every seed of its configs; results reach only the budget that suggested the trial."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec, ledger = _spec(tmp_path, "random"), Ledger()
    small, large = budgets(spec)
    searchers = {b.label: FeasibleOptunaSearch(spec, b, ledger, [("val_loss", "min")], 3) for b in (small, large)}
    search = InterleavedSearch(searchers, {"2e10": 6, "6e10": 6}, {"2e10": 2e10, "6e10": 6e10}, "val_loss", "min")
    configs = [search.suggest(f"t{i}") for i in range(12)]
    ids = [trial_identity(c) for c in configs]
    assert [i.budget_label for i in ids] == ["6e10"] * 6 + ["2e10"] * 6
    assert [i.seed for i in ids] == [0, 1] * 6
    assert search.suggest("t12") == FINISHED and search.trials_left == {"2e10": 0, "6e10": 0}
    assert {i.key for i in ids} == set(ledger.running)
    for n in range(12):
        search.on_trial_complete(f"t{n}", {"status": "ok", "val_loss": 1.0 + n})
    small_study, large_study = searchers["2e10"]._study, searchers["6e10"]._study
    assert [t.value for t in large_study.trials] == [1.5, 3.5, 5.5]  # the mean of a config's 2 seeds
    assert [t.value for t in small_study.trials] == [7.5, 9.5, 11.5]


def test_a_budget_whose_searcher_ends_leaves_the_slots_to_the_others(tmp_path: Path) -> None:
    """A grid with fewer points than the count asks for: that budget ends, the other runs all of its trials."""
    spec, ledger = _spec(tmp_path, "grid"), Ledger()
    planned = planned_trials(spec)
    searchers = {pb.budget.label: GridSearch(list(pb.grid or ()), ledger, [("val_loss", "min")], pb.seeds)
                 for pb in planned}
    trials = {pb.budget.label: pb.trials for pb in planned}
    search = InterleavedSearch(searchers, {"2e10": trials["2e10"], "6e10": trials["6e10"] + 5},
                               {"2e10": 2e10, "6e10": 6e10}, "val_loss", "min")
    labels = []
    for n in range(trials["2e10"] + trials["6e10"]):
        config = search.suggest(f"t{n}")
        assert config is not None and config != FINISHED, n
        labels.append(trial_identity(config).budget_label)
    assert labels == ["6e10"] * trials["6e10"] + ["2e10"] * trials["2e10"]
    assert search.suggest("last") == FINISHED


def _trial(trial_id: str, label: str, seed: int = 0) -> SimpleNamespace:
    """What a scheduler reads of a Tune trial: its id and its config (the identity inside)."""
    identity = TrialIdentity(f"{trial_id:0<16}", seed, label, "moe", {})
    return SimpleNamespace(trial_id=trial_id, config={"trial": identity.to_dict()})


def test_asha_stops_a_trial_only_against_its_own_budget() -> None:
    """At the first rung a 2e10 trial worse than every 6e10 trial continues (its budget's rung is empty); a
    second 2e10 trial worse than the first is stopped. One ASHA over both budgets would stop the first."""
    make = functools.partial(ASHAScheduler, time_attr="training_iteration", metric="val_loss", mode="min",
                             max_t=16, grace_period=1, reduction_factor=2)
    grouped, plain = GroupedASHA(make), make()
    large = [_trial(f"L{n}", "6e10") for n in range(3)]
    small = [_trial("S0", "2e10"), _trial("S1", "2e10")]
    decisions: dict[str, list[str]] = {"grouped": [], "plain": []}
    for name, scheduler in (("grouped", grouped), ("plain", plain)):
        for trial in large + small:
            scheduler.on_trial_add(None, trial)
        for trial, loss in [*zip(large, (1.2, 1.1, 1.0), strict=True), (small[0], 3.0), (small[1], 4.0)]:
            decisions[name].append(scheduler.on_trial_result(None, trial, {"training_iteration": 1,
                                                                           "val_loss": loss}))
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    assert decisions["grouped"] == [go, go, go, go, stop]
    assert decisions["plain"][3] == stop  # the control: mixing budgets would have stopped it
    other_seed = _trial("S2", "2e10", seed=1)  # seed 1 of a config has its own rungs too
    grouped.on_trial_add(None, other_seed)
    assert grouped.on_trial_result(None, other_seed, {"training_iteration": 1, "val_loss": 9.0}) == go


def test_interleaved_search_routes_intermediate_results_to_the_owning_study(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec, ledger = _spec(tmp_path, "random"), Ledger()
    searchers = {b.label: FeasibleOptunaSearch(spec, b, ledger, [("val_loss", "min")], 3) for b in budgets(spec)}
    search = InterleavedSearch(searchers, {"2e10": 2, "6e10": 2}, {"2e10": 2e10, "6e10": 6e10}, "val_loss", "min")
    owners = {f"t{n}": trial_identity(search.suggest(f"t{n}") or {}).budget_label for n in range(4)}
    assert owners == {"t0": "6e10", "t1": "6e10", "t2": "2e10", "t3": "2e10"}
    search.on_trial_result("t2", {"val_loss": 2.5, "step": 10})  # seed 0 of the 2e10 config
    small_trial = searchers["2e10"]._study.trials[0]
    assert small_trial.intermediate_values == {10: 2.5}
    assert searchers["6e10"]._study.trials[0].intermediate_values == {}
