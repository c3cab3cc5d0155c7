"""The trials a parametric law fits, and how a hypothetical size maps to FLOPs per token.

`law_data(frame)` keeps every status-ok trial with finite positive N (active params), D (tokens)
and loss, on or off the budget levels, with what the laws need per trial: chain iterations C,
sparsity S = n_experts / top_k (1 for dense models and when unknown), its arm, its config group
(the seeds of one config share a group: bootstraps resample groups) and its FLOPs per token.

Arms: the `arm` column where there is one, else derived: `dense`, `moe` (C = 1), `coe-C<C>`; a
frame with no architecture columns (an import of N, D, loss) is one arm, its `family` or `all`.
Config groups: every `model.` / `train.` / `data.` param except the seed, plus the budget label,
plus N and D (so imports without params group by size and tokens); seeds never split a group.

FLOPs per token of a hypothetical size (`FlopsMap`): the sweep's own trials carry
`train_flops_per_token` from `coe_sweep.accounting` (which counts attention scores, the router
and the shared expert C times, so it is not 6N); a law's compute-optimal allocation needs it for
sizes nobody trained, so it is fitted per arm as ln f = ln k_arm + b ln N (one slope b shared by
the arms, one intercept per arm) by least squares over the trials. Where a frame has no FLOPs per
token, f = train_flops / tokens; where it has neither, f = 6N (the map says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from coe_sweep.analysis import columns as C

ARM = "arm"
SEED = "seed"
SEED_PARAMS = ("train.seed", SEED)


@dataclass(frozen=True)
class LawData:
    """Per trial (index i): the arrays every law fits. All arrays share one length."""

    n: np.ndarray  # active params N
    d: np.ndarray  # tokens D
    loss: np.ndarray
    flops: np.ndarray  # training FLOPs (planned budget, else measured, else f * D)
    flops_per_token: np.ndarray
    iterations: np.ndarray  # C
    sparsity: np.ndarray  # S = n_experts / top_k
    arm: np.ndarray  # str
    group: np.ndarray  # int config group
    budget: np.ndarray  # level label (str) or None when off the levels
    seed: np.ndarray  # int
    flops_source: str = "accounting"  # where flops_per_token came from: accounting | flops / tokens | none

    def __len__(self) -> int:
        return int(self.n.size)

    def subset(self, mask: np.ndarray) -> LawData:
        return replace(self, **{k: v[mask] for k, v in self.__dict__.items() if isinstance(v, np.ndarray)})

    @property
    def n_groups(self) -> int:
        return int(np.unique(self.group).size)


def arms(df: pd.DataFrame) -> pd.Series:
    """Arm per row: the `arm` column where set, else dense | moe | coe-C<C> (see the module docstring)."""
    if C.ITERATIONS in df.columns or C.DENSE in df.columns:
        fam = C.families(df).to_numpy()
        iterations = np.nan_to_num(C.numeric(df, C.ITERATIONS), nan=1.0)
        chain = np.array([f"coe-C{int(c)}" for c in iterations], dtype=object)
        derived = np.where(fam == "dense", "dense", np.where(iterations > 1, chain, "moe"))
    else:
        family = df[C.FAMILY].astype(str) if C.FAMILY in df.columns else pd.Series("all", index=df.index)
        derived = np.where(family.isin(C.FAMILIES), family, "all")
    out = pd.Series(derived, index=df.index, dtype=object)
    if ARM in df.columns:
        given = df[ARM].astype(str)
        out = out.where(df[ARM].isna() | given.isin(("", "None", "nan")), given)
    return out


def config_groups(df: pd.DataFrame) -> np.ndarray:
    """Integer group per row: rows that differ only in their seed share a group."""
    keys = [c for c in df.columns if str(c).startswith(C.PARAM_PREFIXES) and c not in SEED_PARAMS]
    keys += [c for c in (C.BUDGET_LABEL, C.PARAMS_ACTIVE, C.TOKENS) if c in df.columns]
    if not keys:
        return np.arange(len(df))
    frame = df[keys].astype(str)
    groups: np.ndarray = frame.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    return groups


def law_data(df: pd.DataFrame, *, tol_log: float | None = None) -> LawData:
    """Usable trials of a trials frame (status ok, finite positive N, D, loss); see the module docstring."""
    rows = C.ok_rows(df)
    source = "accounting" if np.isfinite(C.numeric(rows, C.TRAIN_FLOPS_PER_TOKEN)).any() else \
        "flops / tokens" if np.isfinite(C.numeric(rows, C.TRAIN_FLOPS)).any() else "none"
    n = C.numeric(rows, C.PARAMS_ACTIVE)
    loss = C.numeric(rows, C.FINAL_VAL_LOSS)
    fpt = C.numeric(rows, C.TRAIN_FLOPS_PER_TOKEN)
    d = C.numeric(rows, C.TOKENS)
    measured = C.numeric(rows, C.TRAIN_FLOPS)
    d = np.where(np.isfinite(d), d, measured / fpt)
    fpt = np.where(np.isfinite(fpt) & (fpt > 0), fpt, measured / d)
    flops = C.trial_flops(rows)
    flops = np.where(np.isfinite(flops), flops, fpt * d)
    keep = np.isfinite(n) & (n > 0) & np.isfinite(d) & (d > 0) & np.isfinite(loss) & (loss > 0)
    rows = rows[keep]
    iterations = np.nan_to_num(C.numeric(rows, C.ITERATIONS), nan=1.0)
    experts, top_k = C.numeric(rows, C.N_EXPERTS), C.numeric(rows, C.TOP_K)
    arm = arms(rows).to_numpy(dtype=object)
    sparsity = np.where(np.isfinite(experts / top_k) & (arm != "dense"), experts / top_k, 1.0)
    labels: list[str | None] = [None] * len(rows)
    if len(rows):
        kwargs = {} if tol_log is None else {"tol_log": tol_log}
        for label, _, members in C.budget_groups(rows, **kwargs):
            for i in rows.index.get_indexer(members.index):
                labels[i] = label
    seed = np.nan_to_num(C.numeric(rows, SEED), nan=np.nan_to_num(C.numeric(rows, "train.seed"), nan=0.0))
    return LawData(n=n[keep], d=d[keep], loss=loss[keep], flops=flops[keep], flops_per_token=fpt[keep],
                   iterations=np.maximum(iterations, 1.0), sparsity=np.maximum(sparsity, 1.0), arm=arm,
                   group=config_groups(rows), budget=np.array(labels, dtype=object), seed=seed.astype(int),
                   flops_source=source)


@dataclass(frozen=True)
class FlopsMap:
    """FLOPs per token of a hypothetical size: f = k_arm N^b (see the module docstring)."""

    slope: float  # b
    log_k: dict[str, float]  # arm -> ln k_arm
    log_k_pooled: float  # one intercept for every arm (the pooled laws)
    source: str  # 'accounting' | 'flops / tokens' | '6N'
    max_rel_error: float  # worst |f_fit / f - 1| over the trials
    notes: list[str] = field(default_factory=list)

    def log_k_of(self, arm: str | None) -> float:
        return self.log_k.get(arm, self.log_k_pooled) if arm is not None else self.log_k_pooled

    def __call__(self, n: np.ndarray | float, arm: str | None = None) -> np.ndarray:
        return np.exp(self.log_k_of(arm) + self.slope * np.log(n))

    def describe(self) -> str:
        ratio = np.exp(self.log_k_pooled) / 6.0
        return (f"FLOPs/token f = k N^{self.slope:.3f} fitted to the trials' {self.source} "
                f"(pooled k = {ratio:.3g} x 6; worst fit error {self.max_rel_error:.1%})")

    def to_dict(self) -> dict[str, Any]:
        return C.jsonable({"slope": self.slope, "log_k": self.log_k, "log_k_pooled": self.log_k_pooled,
                           "source": self.source, "max_rel_error": self.max_rel_error,
                           "description": self.describe(), "notes": self.notes})  # type: ignore[return-value]


def flops_map(data: LawData) -> FlopsMap:
    """Fit ln f = ln k_arm + b ln N over the trials (shared slope, per-arm intercepts)."""
    fpt = data.flops_per_token
    ok = np.isfinite(fpt) & (fpt > 0)
    if ok.sum() < 2 or np.ptp(np.log(data.n[ok])) == 0:
        return FlopsMap(1.0, {}, float(np.log(6.0)), "6N", 0.0,
                        ["no FLOPs per token in the data: the allocation uses 6N FLOPs per token"])
    names = sorted(set(data.arm[ok]))
    ln_n, ln_f = np.log(data.n[ok]), np.log(fpt[ok])
    X = np.column_stack([ln_n] + [(data.arm[ok] == a).astype(float) for a in names])
    coef = np.linalg.lstsq(X, ln_f, rcond=None)[0]
    slope, log_k = float(coef[0]), {a: float(v) for a, v in zip(names, coef[1:], strict=True)}
    pooled = float(np.mean(ln_f - slope * ln_n))
    fitted = X @ coef
    return FlopsMap(slope, log_k, pooled, data.flops_source, float(np.max(np.abs(np.exp(fitted - ln_f) - 1.0))))
