"""The CoE/MoE law: which effective-size form the trials support, and what an iteration is worth.

Candidates are the `parametric.LawForm`s the data can identify: an iterations term (h = C^(1-psi)
'power', or h = 1 + (1-psi)(C-1) 'linear') only when the trials span >= 2 values of C, a sparsity
term S^gamma only when they span >= 2 values of S; the Chinchilla form is always a candidate.
Each is scored by CV_FOLDS-fold held-out error: config groups (all seeds of a config together)
are split into folds, each fold is predicted by the form refitted without it (from the full fit,
batched), and the held-out mean squared error is averaged over trials with its standard error.
The kept form is the first, in the order fewest parameters, then none < power < linear, then
without sparsity, whose held-out error is within one standard error of the best: extra terms must
predict trials they did not see, not merely fit the ones they did, and the power form (scale-free:
every doubling of C multiplies N_eff by the same factor) is the iterations term unless the linear
one beats it by more than a standard error. psi is defined by the kept form, so this keeps its
meaning stable where the two forms fit equally well (measured in benchmarks/law_recovery.py).

psi comes from the kept form, or, when the kept form has no iterations term but C varies, from
the power form (stated as not selected). In words: one more iteration (C -> C+1) multiplies
N_eff by h(C+1)/h(C), exactly as h(C+1)/h(C) - 1 more active parameters would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coe_sweep.analysis import columns as C
from coe_sweep.analysis import parametric as P
from coe_sweep.analysis.lawdata import LawData, flops_map
from coe_sweep.analysis.laws import (
    N_BOOT,
    ParametricFit,
    basic_interval,
    check_data,
    make_result,
)

CV_FOLDS = 5
_CHAIN_ORDER = {"none": 0, "power": 1, "linear": 2}


@dataclass
class FormScore:
    form: str
    n_params: int
    cv_rmse: float
    cv_rmse_se: float
    chosen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable(dict(self.__dict__))  # type: ignore[return-value]


@dataclass
class IterationWorth:
    from_c: int
    to_c: int
    pct: float  # one more iteration is worth pct % more active parameters
    pct_ci: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable(dict(self.__dict__))  # type: ignore[return-value]


@dataclass
class CoeLaw:
    fit: ParametricFit  # the kept form
    scores: list[FormScore]
    reason: str
    psi: float | None = None
    psi_ci: tuple[float, float] | None = None
    psi_form: str | None = None
    worth: list[IterationWorth] = field(default_factory=list)
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("fit", "scores", "worth")}
        out.update(form=self.fit.form.name, scores=[s.to_dict() for s in self.scores],
                   worth=[w.to_dict() for w in self.worth])
        return C.jsonable(out)  # type: ignore[return-value]


def candidate_forms(data: LawData) -> list[P.LawForm]:
    chains = ["none"] + (["power", "linear"] if np.unique(data.iterations).size >= 2 else [])
    sparsities = [False] + ([True] if np.unique(np.round(data.sparsity, 6)).size >= 2 else [])
    forms = [P.LawForm(c, s) for c in chains for s in sparsities]  # type: ignore[arg-type]
    return sorted(forms, key=lambda f: (len(f.free), _CHAIN_ORDER[f.chain], f.sparsity))


def _folds(group: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index per trial: config groups shuffled and dealt into k folds."""
    uniq, inverse = np.unique(group, return_inverse=True)
    fold_of_group = np.random.default_rng(seed).permutation(uniq.size) % k
    return fold_of_group[inverse]


def cv_score(form: P.LawForm, data: LawData, theta: np.ndarray, seed: int) -> tuple[float, float]:
    """(held-out RMSE, its standard error) over CV_FOLDS folds of config groups."""
    k = min(CV_FOLDS, data.n_groups)
    fold = _folds(data.group, k, seed)
    weights = np.stack([(fold != i).astype(float) for i in range(k)])
    thetas = P.refit(form, data, theta, weights)
    pred = P.predict(form, thetas, data.n, data.d, data.iterations, data.sparsity)  # (k, n)
    sq = (pred[fold, np.arange(len(data))] - data.loss) ** 2
    mse = float(np.mean(sq))
    rmse = float(np.sqrt(mse))
    se_mse = float(np.std(sq, ddof=1) / np.sqrt(sq.size)) if sq.size > 1 else float("inf")
    return rmse, se_mse / (2 * rmse) if rmse > 0 else float("inf")


def _worth(form: P.LawForm, theta: np.ndarray, boot: np.ndarray, c_max: int, ci: float) -> list[IterationWorth]:
    out = []
    for c in range(1, max(c_max, 2)):
        def pct(rows: np.ndarray, c: int = c) -> np.ndarray:
            psi = rows[..., P.PARAMS.index("psi")]
            chain_only = P.LawForm(form.chain, False)
            up = P.ln_multiplier(chain_only, psi, 0.0, np.full_like(psi, c + 1.0), np.ones_like(psi))
            down = P.ln_multiplier(chain_only, psi, 0.0, np.full_like(psi, float(c)), np.ones_like(psi))
            return 100.0 * (np.exp(up - down) - 1.0)
        point = float(pct(theta[None])[0])
        out.append(IterationWorth(c, c + 1, point, basic_interval(point, pct(boot), ci)))
    return out


def _summary(law: CoeLaw) -> str:
    if law.psi is None:
        return "chain iterations do not vary in these trials: no iterations term can be fitted"
    parts = []
    for w in law.worth:
        ci = f" (95% CI {w.pct_ci[0]:.0f}% to {w.pct_ci[1]:.0f}%)" if w.pct_ci else ""
        parts.append(f"going from {w.from_c} to {w.to_c} iterations is worth as much as {w.pct:.0f}% more active "
                     f"parameters{ci}")
    psi_ci = f" ({law.psi_ci[0]:.2f} to {law.psi_ci[1]:.2f})" if law.psi_ci else ""
    kept = "" if law.psi_form == law.fit.form.name else f"; the held-out error did not favour this term, {law.reason}"
    return (f"One more iteration: {'; '.join(parts)}. psi = {law.psi:.2f}{psi_ci} in the {law.psi_form} form "
            f"(psi = 0: an iteration is worth a fresh copy of the active parameters; psi = 1: nothing){kept}.")


def fit_coe_law(data: LawData, *, n_boot: int = N_BOOT, seed: int = 0, ci: float = 0.95) -> CoeLaw:
    """Fit every candidate form, keep one by held-out error, bootstrap it, and state psi."""
    check_data(data, "the CoE/MoE law")
    fmap = flops_map(data)
    forms = candidate_forms(data)
    if forms == [P.CHINCHILLA] and np.unique(data.arm).size < 2:
        raise ValueError("the CoE/MoE law needs trials whose chain iterations, sparsity (experts per token) or arm "
                         "vary; in these trials none does, so it would be Approach 3 again")
    thetas = {f: P.fit(f, data, P.DEFAULT_METHOD) for f in forms}
    scores = [FormScore(f.name, 3 + len(f.free), *cv_score(f, data, thetas[f], seed)) for f in forms]
    best = min(scores, key=lambda s: s.cv_rmse)
    kept_i = next(i for i, s in enumerate(scores) if s.cv_rmse <= best.cv_rmse + best.cv_rmse_se)
    scores[kept_i].chosen = True
    kept = forms[kept_i]
    reason = (f"{kept.name} kept: held-out RMSE {scores[kept_i].cv_rmse:.4g} is within one standard error "
              f"({best.cv_rmse_se:.2g}) of the best ({best.form}, {best.cv_rmse:.4g})"
              + (" and it has the fewest parameters" if kept.name != best.form else " and no simpler form is"))
    boot = P.bootstrap(kept, data, P.DEFAULT_METHOD, thetas[kept], n_boot, seed)
    law = CoeLaw(make_result("coe_law", kept, data, thetas[kept], boot, fmap, ci, P.DEFAULT_METHOD, False),
                 scores, reason)
    chain_form = kept if kept.chain != "none" else next((f for f in forms if f.chain == "power"), None)
    if chain_form is not None:
        theta = thetas[chain_form]
        chain_boot = boot if chain_form == kept else P.bootstrap(chain_form, data, P.DEFAULT_METHOD, theta, n_boot, seed)
        law.psi = float(theta[P.PARAMS.index("psi")])
        law.psi_ci = basic_interval(law.psi, chain_boot[:, P.PARAMS.index("psi")], ci)
        law.psi_form = chain_form.name
        law.worth = _worth(chain_form, theta, chain_boot, int(data.iterations.max()), ci)
    law.summary = _summary(law)
    return law
