"""The search space of a spec as values: grid enumeration, random points, Optuna distributions.

A point ("sampled params") is a dict keyed like the spec's `space` (`top_k`, `train.lr`, `data.seed`).

Grid enumeration (the `grid` algorithm, `coe-sweep plan` and load-time feasibility):
- `{choice: [...]}`: every value, in the file's order;
- `{int: [lo, hi], step: s}`: lo, lo+s, ... <= hi (step 1 when not given);
- `{int: [lo, hi], log: true}`: the doubling ladder lo, 2lo, 4lo, ... plus hi;
- `{float: [lo, hi]}`: not enumerable; the plan shows one representative value, the midpoint
  (geometric midpoint sqrt(lo*hi) when log), and the grid algorithm refuses float ranges.
Points are the Cartesian product in the order the space lists its dimensions. A bundle dimension
(choices that are mappings of fields) takes the index of its choice; `expand_point` applies it.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import optuna

from coe_sweep.spec.arms import choice_fields

if TYPE_CHECKING:
    from coe_sweep.spec.schema import Dimension, SweepSpec

MAX_GRID_POINTS = 100_000  # grids larger than this are sampled, never enumerated


def dimension_values(dim: Dimension) -> list[Any]:
    """Grid values of one dimension; a float range gives its (geometric, when log) midpoint only."""
    if dim.kind == "choice":
        assert dim.choice is not None
        return list(range(len(dim.choice))) if dim.is_bundle else list(dim.choice)
    lo, hi = dim.bounds
    if dim.kind == "float":
        return [math.sqrt(lo * hi) if dim.log else (lo + hi) / 2]
    if dim.log:
        ladder = []
        value = lo
        while value < hi:
            ladder.append(value)
            value *= 2
        return ladder + [hi]
    return list(range(lo, hi + 1, dim.step or 1))


def dimension_size(dim: Dimension) -> int:
    """Number of grid values (1 for a float range: its representative)."""
    if dim.kind == "int" and not dim.log:
        lo, hi = dim.bounds
        return (hi - lo) // (dim.step or 1) + 1
    return len(dimension_values(dim))


def grid_size(spec: SweepSpec) -> int:
    return math.prod(dimension_size(dim) for dim in spec.space.values())


def is_enumerable(spec: SweepSpec) -> bool:
    """True when the space has no float range (every point of the grid is a real candidate)."""
    return all(dim.kind != "float" for dim in spec.space.values())


def grid_points(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    """Every grid point (floats at their representative), in space order. Check `grid_size` first."""
    keys = list(spec.space)
    for values in itertools.product(*(dimension_values(spec.space[k]) for k in keys)):
        yield dict(zip(keys, values, strict=False))


def sample_point(spec: SweepSpec, rng: random.Random) -> dict[str, Any]:
    """One uniformly random point (log-uniform for log ranges), as Optuna's RandomSampler would draw."""
    point: dict[str, Any] = {}
    for key, dim in spec.space.items():
        if dim.kind == "choice":
            assert dim.choice is not None
            point[key] = rng.randrange(len(dim.choice)) if dim.is_bundle else rng.choice(dim.choice)
            continue
        lo, hi = dim.bounds
        if dim.kind == "int":
            if dim.log:
                point[key] = min(hi, max(lo, round(math.exp(rng.uniform(math.log(lo), math.log(hi + 0.5))))))
            else:
                step = dim.step or 1
                point[key] = lo + step * rng.randint(0, (hi - lo) // step)
        else:
            point[key] = math.exp(rng.uniform(math.log(lo), math.log(hi))) if dim.log else rng.uniform(lo, hi)
    return point


def candidate_points(spec: SweepSpec, max_points: int = 2_000, seed: int = 0) -> tuple[list[dict[str, Any]], bool]:
    """Points to check feasibility on, and whether they are the whole space (`exhaustive`).

    The grid when it is enumerable and has at most `max_points` points (exhaustive). With float
    ranges, the grid with each float range at lo, its representative and hi, when that is small
    enough (floats rarely decide feasibility; not exhaustive). Otherwise `max_points` seeded random
    points."""
    if is_enumerable(spec) and grid_size(spec) <= max_points:
        return list(grid_points(spec)), True
    n_floats = sum(dim.kind == "float" for dim in spec.space.values())
    if grid_size(spec) * 3**n_floats <= max_points:
        keys = list(spec.space)
        axes = [[*dim.bounds[:1], *dimension_values(dim), *dim.bounds[1:]] if dim.kind == "float"
                else dimension_values(dim) for dim in (spec.space[k] for k in keys)]
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes)], False
    rng = random.Random(seed)
    return [sample_point(spec, rng) for _ in range(max_points)], False


def optuna_space(spec: SweepSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """The space as Optuna distributions keyed like `spec.space` (for OptunaSearch(space=...))."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for key, dim in spec.space.items():
        if dim.kind == "choice":
            assert dim.choice is not None
            values = range(len(dim.choice)) if dim.is_bundle else dim.choice
            out[key] = optuna.distributions.CategoricalDistribution(tuple(values))
        elif dim.kind == "int":
            lo, hi = dim.bounds
            out[key] = optuna.distributions.IntDistribution(lo, hi, log=dim.log, step=dim.step or 1)
        else:
            lo, hi = dim.bounds
            out[key] = optuna.distributions.FloatDistribution(float(lo), float(hi), log=dim.log)
    return out


def expand_point(spec: SweepSpec, point: dict[str, Any]) -> dict[str, Any]:
    """Field values of a point: bundle indices replaced by the fields their choice sets.

    Raises ValueError for a bundle index out of range (a point that did not come from this space)."""
    fields: dict[str, Any] = {}
    for key, value in point.items():
        dim = spec.space.get(key)
        if dim is not None and dim.is_bundle:
            assert dim.choice is not None
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(dim.choice):
                raise ValueError(f"{key}={value!r} is invalid: expected a choice index 0..{len(dim.choice) - 1}")
            fields.update(choice_fields(dim.choice[value]))
        else:
            fields[key] = value
    return fields
