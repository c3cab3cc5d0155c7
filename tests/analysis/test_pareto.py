"""Pareto sets: hand-checked fronts, agreement with a brute-force O(n^2) reference, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coe_sweep.analysis import first_front_mask, non_dominated_sort, pareto_front, pareto_set


def brute_force_ranks(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """Reference: peel fronts with the textbook pairwise dominance test (NaN rows -> -1)."""
    v = values * np.array([1.0 if d == "min" else -1.0 for d in directions])
    n = len(v)
    rank = np.full(n, -1)
    left = {i for i in range(n) if not np.isnan(v[i]).any()}
    front = 0
    while left:
        current = {i for i in left
                   if not any(np.all(v[j] <= v[i]) and np.any(v[j] < v[i]) for j in left if j != i)}
        for i in current:
            rank[i] = front
        left -= current
        front += 1
    return rank


def test_hand_checked_two_objectives_min_min() -> None:
    # (loss, peak memory), both minimised:
    #   A (1.0, 10)  front: lowest loss (ties E on loss, less memory)
    #   B (2.0, 5)   front
    #   C (1.5, 8)   front
    #   D (2.0, 6)   dominated by B (same loss, more memory)
    #   E (1.0, 12)  dominated by A
    #   F (3.0, 1)   front: least memory
    #   G (1.5, 8)   exact duplicate of C: duplicates do not dominate each other -> front
    #   H (2.5, 5)   dominated by B
    df = pd.DataFrame({"final_val_loss": [1.0, 2.0, 1.5, 2.0, 1.0, 3.0, 1.5, 2.5],
                       "peak_memory_bytes": [10, 5, 8, 6, 12, 1, 8, 5], "status": "ok"},
                      index=list("ABCDEFGH"))
    front = pareto_front(df, [("val_loss", "min"), ("peak_memory", "min")])
    assert list(front) == ["A", "C", "G", "B", "F"]  # sorted by the first objective
    ranks = non_dominated_sort(df.to_numpy()[:, :2].astype(float), ["min", "min"])
    # after removing the front: D (2,6) and E (1,12) and H (2.5,5) -> H is dominated by nobody left? D(2,6)
    # vs H(2.5,5): neither dominates; E(1,12) vs D: neither. So all three are rank 1.
    assert dict(zip(df.index, ranks, strict=True)) == {"A": 0, "B": 0, "C": 0, "D": 1, "E": 1, "F": 0,
                                                       "G": 0, "H": 1}


def test_hand_checked_two_objectives_min_max() -> None:
    # (loss min, tokens/s max):
    #   P (1.0, 100)  front: lowest loss
    #   Q (1.2, 300)  front
    #   R (1.2, 200)  dominated by Q (same loss, slower)
    #   S (2.0, 300)  dominated by Q (worse loss, same speed)
    #   T (3.0, 500)  front: fastest
    #   U (0.9, 50)   front: even lower loss, slowest
    df = pd.DataFrame({"final_val_loss": [1.0, 1.2, 1.2, 2.0, 3.0, 0.9],
                       "tokens_per_s": [100, 300, 200, 300, 500, 50]}, index=list("PQRSTU"))
    assert list(pareto_front(df, [("val_loss", "min"), ("tokens_per_s", "max")])) == ["U", "P", "Q", "T"]
    # bare names take the default direction (tokens_per_s: max)
    assert list(pareto_front(df, ["val_loss", "tokens_per_s"])) == ["U", "P", "Q", "T"]
    # flipping loss to max: T (3.0, 500) dominates everything
    assert list(pareto_front(df, [("val_loss", "max"), ("tokens_per_s", "max")])) == ["T"]


def test_hand_checked_three_objectives() -> None:
    # (loss min, peak memory min, tokens/s max):
    #   0 (1, 5, 10)    dominated by 1 (same loss and memory, slower)
    #   1 (1, 5, 12)    front
    #   2 (2, 1, 5)     front: least memory
    #   3 (2, 2, 5)     dominated by 2
    #   4 (3, 3, 20)    front: fastest
    #   5 (0.5, 9, 1)   front: lowest loss
    #   6 (2, 1, 5)     duplicate of 2 -> front
    #   7 (1, 6, 12)    dominated by 1
    df = pd.DataFrame({"final_val_loss": [1, 1, 2, 2, 3, 0.5, 2, 1],
                       "peak_memory_bytes": [5, 5, 1, 2, 3, 9, 1, 6],
                       "tokens_per_s": [10, 12, 5, 5, 20, 1, 5, 12]})
    objectives = [("val_loss", "min"), ("peak_memory", "min"), ("tokens_per_s", "max")]
    assert sorted(pareto_front(df, objectives)) == [1, 2, 4, 5, 6]
    ranks = pareto_set(df, objectives, with_ranks=True).ranks
    # rank 1 after removing the front: 0 (1,5,10), 3 (2,2,5), 7 (1,6,12); 0 vs 7: 0 has less memory,
    # 7 is faster -> neither dominates; 3 vs 0: 3 less memory, 0 better loss -> neither.
    assert list(ranks) == [1, 0, 0, 1, 0, 0, 0, 1]  # type: ignore[arg-type]


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_brute_force_on_random_data_with_ties(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(150, m)).astype(float)  # few levels: many ties and duplicates
    values[rng.integers(0, 150, 5), rng.integers(0, m, 5)] = np.nan
    directions = list(rng.choice(["min", "max"], size=m))
    expected = brute_force_ranks(values, directions)
    np.testing.assert_array_equal(non_dominated_sort(values, directions), expected)
    np.testing.assert_array_equal(first_front_mask(values, directions), expected == 0)


@pytest.mark.parametrize("m", [2, 3])
def test_large_random_first_front_matches_pairwise(m: int) -> None:
    """2,000 continuous points (the N-D path runs several blocks and the anchor prefilter)."""
    values = np.random.default_rng(11).random((2000, m))
    v = values
    le = np.ones((2000, 2000), dtype=bool)
    lt = np.zeros((2000, 2000), dtype=bool)
    for k in range(m):
        le &= v[None, :, k] <= v[:, None, k]
        lt |= v[None, :, k] < v[:, None, k]
    expected = ~(le & lt).any(axis=1)
    np.testing.assert_array_equal(first_front_mask(values, ["min"] * m), expected)


def test_nan_rows_excluded_and_counted_and_status_and_filters() -> None:
    df = pd.DataFrame({"final_val_loss": [1.0, np.nan, 0.5, 2.0, 0.1, 0.2],
                       "peak_memory_bytes": [1.0, 0.1, np.nan, 0.5, 0.01, 0.05],
                       "status": ["ok", "ok", "ok", "ok", "failed", "ok"],
                       "family": ["moe", "moe", "coe", "coe", "coe", "coe"],
                       "model.iterations": ["1", "1", "2", "2", "2", "3"]})
    result = pareto_set(df)
    assert result.n_excluded_nan == 2 and result.n_excluded_status == 1 and result.n_considered == 5
    assert list(result.indices) == [5]  # row 4 dominates everything but failed
    only_moe = pareto_set(df, filters={"family": "moe"})
    assert list(only_moe.indices) == [0] and only_moe.n_excluded_filters == 3
    two = pareto_set(df, filters={"model.iterations": 2})  # numeric match against string params
    assert list(two.indices) == [3] and two.n_excluded_nan == 1
    assert list(pareto_set(df, filters={"model.iterations": [1, 3]}).indices) == [5]  # 5 dominates 0
    # iterations 1 or 2: ok, finite rows 0 (1.0, 1.0) and 3 (2.0, 0.5): neither dominates; sorted by loss
    assert list(pareto_set(df, filters={"model.iterations": [1, 2]}).indices) == [0, 3]
    assert list(pareto_set(df, filters={"final_val_loss": lambda s: s > 0.3}).indices) == [0, 3]


def test_bad_objectives_and_directions_are_named() -> None:
    df = pd.DataFrame({"final_val_loss": [1.0], "peak_memory_bytes": [1.0]})
    with pytest.raises(ValueError, match=r"objective='val_los' is unknown: expected one of .*val_loss"):
        pareto_front(df, [("val_los", "min"), ("peak_memory", "min")])
    with pytest.raises(ValueError, match=r"direction='down' for objective 'val_loss'"):
        pareto_front(df, [("val_loss", "down"), ("peak_memory", "min")])
    with pytest.raises(ValueError, match="names a column twice"):
        pareto_front(df, ["val_loss", "final_val_loss"])
    with pytest.raises(ValueError, match="filter column 'nope' is unknown"):
        pareto_front(df, filters={"nope": 1})
    with pytest.raises(ValueError, match=r"directions=\['up'\]"):
        non_dominated_sort(np.zeros((3, 2)), ["min", "up"])
    with pytest.raises(ValueError, match="one per objective"):
        non_dominated_sort(np.zeros((3, 2)), ["min"])
    assert list(pareto_front(df.iloc[:0])) == []
