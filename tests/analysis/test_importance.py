"""Hyperparameter importance through Optuna's evaluators, checked on simulated ground truth: the loss depends on
one field only, two others are noise; both evaluators must rank the real one first, at every seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coe_sweep.analysis.importance import MIN_TRIALS, param_importances


def simulated_sweep(n_per_budget: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for label, flops in (("1e12", 1e12), ("1e13", 1e13)):
        for i in range(n_per_budget):
            lr = float(rng.uniform(1e-3, 1e-2))
            rows.append({"run_id": f"{label}-{i}", "status": "ok", "budget_label": label, "budget_flops": flops,
                         "train.lr": lr, "model.top_k": int(rng.integers(1, 5)),
                         "model.router_mode": str(rng.choice(["independent", "shared"])),
                         "train.seed": i % 3, "train.threads": 1 + i % 2,  # neither is a config field
                         "final_val_loss": 2.0 + 1e4 * (lr - 4e-3) ** 2 + float(rng.normal(0, 0.002))})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("evaluator", "seeds"), [("ped-anova", 5), ("fanova", 3)])  # fANOVA's forest: ~1 s a seed
def test_the_field_that_drives_the_loss_ranks_first(evaluator: str, seeds: int) -> None:
    wins = 0
    for seed in range(seeds):
        answers = param_importances(simulated_sweep(40, seed), evaluator=evaluator)
        assert [a.budget_label for a in answers] == ["1e12", "1e13"]
        for answer in answers:
            assert answer.message is None and set(answer.importances) == {"train.lr", "model.top_k", "model.router_mode"}
            assert sum(answer.importances.values()) == pytest.approx(1.0)
            wins += max(answer.importances, key=answer.importances.get) == "train.lr"
    assert wins == 2 * seeds  # every budget of every seed


def test_too_few_trials_and_nothing_varying_are_said_plainly() -> None:
    thin = param_importances(simulated_sweep(MIN_TRIALS - 1, 0))
    assert [a.message for a in thin] == [f"too few finished trials for importance: {MIN_TRIALS - 1} at budget {b}, "
                                         f"need at least {MIN_TRIALS}" for b in ("1e12", "1e13")]
    flat = simulated_sweep(12, 0).assign(**{"train.lr": 3e-3, "model.top_k": 2, "model.router_mode": "independent"})
    assert all("no config field varies" in a.message for a in param_importances(flat))
    with pytest.raises(ValueError, match="evaluator='nope' is invalid: expected one of ped-anova, fanova"):
        param_importances(flat, evaluator="nope")
