"""The `builtin:arithmetic` source: a deterministic generator of multi-step arithmetic word problems.

Each example is a `{"question", "answer"}` row in the style of MetaMathQA (the paper's data set): the
answer works the problem step by step and ends with `The answer is: N`. Example `i` of seed `s` is a
pure function of `(s, i)`, so the same data config always yields the same rows, on any machine,
with nothing downloaded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

_NAMES = ("Tom", "Ana", "Ravi", "Mei", "Lucas", "Fatima", "Olga", "Kwame", "Sara", "Diego",
          "Hana", "Omar", "Lena", "Yuki", "Pablo", "Nia", "Ivan", "Chloe", "Amir", "Grace")
_ITEMS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "cookies", "stamps",
          "shells", "cards", "eggs", "flowers", "candies", "toy cars", "beads")


def _add(rng: random.Random, name: str, item: str, value: int) -> tuple[str, str, int]:
    n = rng.randint(2, 60)
    verb = rng.choice(("buys", "finds", "is given", "wins"))
    return f"{name} {verb} {n} more {item}.", f"{value} + {n} = {value + n}", value + n


def _sub(rng: random.Random, name: str, item: str, value: int) -> tuple[str, str, int] | None:
    if value < 1:  # counts never go negative
        return None
    n = rng.randint(1, value)
    verb = rng.choice(("gives away", "sells", "loses", "uses"))
    return f"{name} {verb} {n} {item}.", f"{value} - {n} = {value - n}", value - n


def _mul(rng: random.Random, name: str, item: str, value: int) -> tuple[str, str, int]:
    n = rng.choice((2, 3, 4, 5))
    word = {2: "doubles", 3: "triples", 4: "quadruples", 5: "multiplies by five"}[n]
    return (f"Then {name}'s number of {item} {word}.", f"{value} * {n} = {value * n}", value * n)


def _div(rng: random.Random, name: str, item: str, value: int) -> tuple[str, str, int] | None:
    divisors = [d for d in (2, 3, 4, 5, 6) if value % d == 0 and value // d > 0]
    if not divisors:
        return None
    n = rng.choice(divisors)
    return (f"{name} shares the {item} equally among {n} friends and keeps one share.",
            f"{value} / {n} = {value // n}", value // n)


def arithmetic_example(seed: int, index: int) -> dict[str, str]:
    """The `index`-th problem for `seed`: 2-4 operations on a starting count, worked step by step."""
    rng = random.Random(seed * 1_000_003 + index)
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    value = rng.randint(1, 99)
    sentences = [f"{name} has {value} {item}."]
    steps = [f"{name} starts with {value} {item}."]
    for _ in range(rng.randint(2, 4)):
        op = rng.choice((_add, _sub, _mul, _div))
        out = op(rng, name, item, value)
        if out is None:  # not divisible / nothing left: add instead, so every problem has the same step count
            out = _add(rng, name, item, value)
        sentence, step, value = out
        sentences.append(sentence)
        steps.append(step + ".")
    sentences.append(f"How many {item} does {name} have now?")
    steps.append(f"The answer is: {value}")
    return {"question": " ".join(sentences), "answer": " ".join(steps)}


def generate_arithmetic(seed: int, num_examples: int) -> Iterator[dict[str, str]]:
    """Generator for `datasets.Dataset.from_generator` (gen_kwargs make the cache key)."""
    for index in range(num_examples):
        yield arithmetic_example(seed, index)
