"""The CoE/MoE law: which effective-size form the trials support, and what an iteration is worth.

Candidates are the `parametric.LawForm`s the data can identify: an iterations term (h = C^(1-psi)
'power', or h = 1 + (1-psi)(C-1) 'linear') only when the trials span >= 2 values of C, a sparsity
term S^gamma only when they span >= 2 values of S; the Chinchilla form is always a candidate.
Each is scored by CV_FOLDS-fold held-out error: config groups (all seeds of a config together)
are split into folds, each fold is predicted by the form refitted without it (from the full fit,
batched), and every trial's held-out error is its Huber loss (the fit's own objective, so a few wild
trials do not drown the comparison). The kept form is the first, in the order fewest parameters,
then none < power < linear, then without sparsity, whose mean held-out error exceeds the best form's
by no more than SE_RULE (2) standard errors of the paired per-trial difference, a one-sided test at
about 2.5%: extra terms must predict trials they did not see, not merely fit the ones they did
(with one standard error, a law with no iterations effect gained one in a quarter of simulated
sweeps); the power form (scale-free: every doubling of C multiplies N_eff by the same factor) is
the iterations term unless the linear one beats it by more than that.

psi is quoted in the power form h = C^(1 - psi), its definition (with the kept form's sparsity
term; every term the data support when the kept form has no iterations term, stated as such), so
that it means the same whichever form predicts best. What one more iteration is worth comes from
the kept form: C -> C+1 multiplies N_eff by h(C+1)/h(C), exactly as h(C+1)/h(C) - 1 more active
parameters would.
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
SE_RULE = 2.0  # a form is beaten when its paired excess is > 2 standard errors (one-sided, ~2.5%)
_CHAIN_ORDER = {"none": 0, "power": 1, "linear": 2}


@dataclass
class FormScore:
    form: str
    n_params: int
    cv_rmse: float  # sqrt of the mean held-out Huber loss (the RMSE where no trial is an outlier)
    excess: float = 0.0  # mean held-out loss minus the best form's, per trial
    excess_se: float = 0.0  # its standard error (paired over trials)
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


def cv_losses(form: P.LawForm, data: LawData, theta: np.ndarray, seed: int) -> np.ndarray:
    """Per trial, its held-out Huber loss (the fit's own objective and threshold) over CV_FOLDS folds of
    config groups, each fold predicted by the form refitted without it."""
    k = min(CV_FOLDS, data.n_groups)
    fold = _folds(data.group, k, seed)
    weights = np.stack([(fold != i).astype(float) for i in range(k)])
    thetas = P.refit(form, data, theta, weights)
    pred = P.predict(form, thetas, data.n, data.d, data.iterations, data.sparsity)  # (k, n)
    f_scale = P.robust_scale_of(form, data, theta)
    z = ((pred[fold, np.arange(len(data))] - data.loss) / f_scale) ** 2
    huber: np.ndarray = np.where(z <= 1.0, z, 2.0 * np.sqrt(np.maximum(z, 1.0)) - 1.0) * f_scale**2
    return huber


def score_forms(forms: list[P.LawForm], losses: dict[P.LawForm, np.ndarray]) -> tuple[list[FormScore], int]:
    """Scores and the index of the kept form (see the module docstring)."""
    best = min(forms, key=lambda f: float(np.mean(losses[f])))
    scores = []
    for f in forms:
        excess = losses[f] - losses[best]
        se = float(np.std(excess, ddof=1) / np.sqrt(excess.size)) if excess.size > 1 else 0.0
        scores.append(FormScore(f.name, 3 + len(f.free), float(np.sqrt(np.mean(losses[f]))), float(np.mean(excess)), se))
    kept = next(i for i, s in enumerate(scores) if s.excess <= SE_RULE * s.excess_se)
    scores[kept].chosen = True
    return scores, kept


def _worth(form: P.LawForm, theta: np.ndarray, boot: np.ndarray, c_max: int, ci: float) -> list[IterationWorth]:
    out = []
    for c in range(1, max(c_max, 2)):
        def pct(rows: np.ndarray, c: int = c) -> np.ndarray:
            psi = rows[..., P.PARAMS.index("psi")]
            chain_only = P.LawForm(form.chain, False)
            up = P.ln_multiplier(chain_only, psi, 0.0, np.full_like(psi, c + 1.0), np.ones_like(psi))
            down = P.ln_multiplier(chain_only, psi, 0.0, np.full_like(psi, float(c)), np.ones_like(psi))
            worth: np.ndarray = 100.0 * (np.exp(up - down) - 1.0)
            return worth
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
    kept = law.fit.form
    note = ("" if kept.chain == "power" else
            f"; the held-out error did not favour an iterations term ({law.reason}), so these figures are what "
            "the data allow, not what the served law assumes" if kept.chain == "none" else
            f"; the kept form is {kept.name}, whose own psi means something else: psi is quoted in the power form")
    return (f"One more iteration: {'; '.join(parts)}. psi = {law.psi:.2f}{psi_ci} in the {law.psi_form} form "
            f"h = C^(1 - psi) (psi = 0: an iteration is worth a fresh copy of the active parameters; psi = 1: "
            f"nothing){note}.")


def fit_coe_law(data: LawData, *, n_boot: int = N_BOOT, seed: int = 0, ci: float = 0.95) -> CoeLaw:
    """Fit every candidate form, keep one by held-out error, bootstrap it, and state psi."""
    check_data(data, "the CoE/MoE law")
    fmap = flops_map(data)
    forms = candidate_forms(data)
    if forms == [P.CHINCHILLA] and np.unique(data.arm).size < 2:
        raise ValueError("the CoE/MoE law needs trials whose chain iterations, sparsity (experts per token) or arm "
                         "vary; in these trials none does, so it would be Approach 3 again")
    thetas = {f: P.fit(f, data, P.DEFAULT_METHOD) for f in forms}
    scores, kept_i = score_forms(forms, {f: cv_losses(f, data, thetas[f], seed) for f in forms})
    kept, best = forms[kept_i], min(scores, key=lambda s: s.cv_rmse)
    reason = (f"{kept.name} kept: its held-out error ({scores[kept_i].cv_rmse:.4g}) exceeds the best "
              f"({best.form}, {best.cv_rmse:.4g}) by no more than {SE_RULE:g} standard errors of the paired difference"
              + (", and no form before it in the order does" if kept.name != best.form else ""))
    boot = P.bootstrap(kept, data, P.DEFAULT_METHOD, thetas[kept], n_boot, seed)
    law = CoeLaw(make_result("coe_law", kept, data, thetas[kept], boot, fmap, ci, P.DEFAULT_METHOD, False),
                 scores, reason)
    power = [f for f in forms if f.chain == "power" and (f.sparsity == kept.sparsity or kept.chain == "none")]
    if power:
        psi_form = power[-1]  # psi is defined in the power form; with the kept form's other terms
        boots = {kept: boot} | ({} if psi_form == kept else
                                {psi_form: P.bootstrap(psi_form, data, P.DEFAULT_METHOD, thetas[psi_form], n_boot, seed)})
        law.psi = float(thetas[psi_form][P.PARAMS.index("psi")])
        law.psi_ci = basic_interval(law.psi, boots[psi_form][:, P.PARAMS.index("psi")], ci)
        law.psi_form = psi_form.name
        worth_form = kept if kept.chain != "none" else psi_form  # what the served law says an iteration is worth
        law.worth = _worth(worth_form, thetas[worth_form], boots[worth_form], int(data.iterations.max()), ci)
    law.summary = _summary(law)
    return law
