"""Constraint expressions of a sweep spec (`top_k <= n_experts`, `top_k * iterations <= 8`).

Parsed by a tiny recursive-descent grammar, never `eval`:

    constraint := sum (CMP sum)+            chained comparisons: `2 <= top_k * iterations <= 8`
    sum        := product (('+' | '-') product)*
    product    := unary (('*' | '/') unary)*
    unary      := '-' unary | atom
    atom       := NUMBER | NAME | STRING | '(' sum ')'
    CMP        := '<=' | '<' | '>=' | '>' | '==' | '!='
    NAME       := a model field (`top_k`) or `train.<field>` / `data.<field>`
    STRING     := 'text' or "text" (only with == and !=, e.g. `router_mode == 'shared'`)

Booleans evaluate as 0/1 and None as itself (only == / != make sense on it).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_EXPRESSION_CHARS = 500
MAX_NESTING = 32  # parentheses and unary minus inside each other: the parser and evaluator recurse per level

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)"
    r"|(?P<str>'[^']*'|\"[^\"]*\")"
    r"|(?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)))"
)
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
    "==": operator.eq, "!=": operator.ne,
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}


class ConstraintSyntaxError(ValueError):
    """The expression does not follow the grammar; the message says where and what is accepted."""


@dataclass(frozen=True)
class _Num:
    value: float | int


@dataclass(frozen=True)
class _Str:
    value: str


@dataclass(frozen=True)
class _Name:
    name: str


@dataclass(frozen=True)
class _Neg:
    arg: Any


@dataclass(frozen=True)
class _BinOp:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: `operands[0] ops[0] operands[1] ops[1] ...`, all comparisons must hold."""

    text: str
    operands: tuple[Any, ...]
    ops: tuple[str, ...]

    @property
    def names(self) -> frozenset[str]:
        found: set[str] = set()
        for operand in self.operands:
            _collect_names(operand, found)
        return frozenset(found)

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        """True when every comparison holds for these field values (KeyError on a missing name)."""
        evaluated = [_eval(operand, values) for operand in self.operands]
        for op, left, right in zip(self.ops, evaluated, evaluated[1:], strict=False):
            try:
                if not _CMP[op](left, right):
                    return False
            except TypeError as exc:  # '<' between str and int: a spec error, reported clearly
                raise ValueError(f"{self.text!r}: cannot compare {left!r} {op} {right!r}") from exc
        return True


def _collect_names(node: Any, found: set[str]) -> None:
    if isinstance(node, _Name):
        found.add(node.name)
    elif isinstance(node, _Neg):
        _collect_names(node.arg, found)
    elif isinstance(node, _BinOp):
        _collect_names(node.left, found)
        _collect_names(node.right, found)


def _eval(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, (_Num, _Str)):
        return node.value
    if isinstance(node, _Name):
        value = values[node.name]
        return int(value) if isinstance(value, bool) else value
    if isinstance(node, _Neg):
        value = _eval(node.arg, values)
        if not isinstance(value, (int, float)):
            raise ValueError(f"cannot negate {value!r}: arithmetic needs numbers")
        return -value
    left, right = _eval(node.left, values), _eval(node.right, values)
    if not all(isinstance(v, (int, float)) for v in (left, right)):  # no str repetition, no None math
        raise ValueError(f"cannot compute {left!r} {node.op} {right!r}: arithmetic needs numbers")
    if node.op == "/" and right == 0:
        return float("inf") if left > 0 else float("-inf") if left < 0 else float("nan")
    try:
        return _ARITH[node.op](left, right)
    except TypeError as exc:
        raise ValueError(f"cannot compute {left!r} {node.op} {right!r}") from exc


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise ConstraintSyntaxError(
                f"unexpected character {text[column]!r} at column {column + 1}; expected names, numbers, "
                "'quoted strings', + - * / ( ) and comparisons <= < >= > == !=")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def nested(self, token: tuple[str, str, int]) -> None:
        """One more level of '(' or unary '-'; refused past MAX_NESTING (before Python's recursion limit)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ConstraintSyntaxError(f"{token[1]!r} at column {token[2] + 1} nests {self.depth} levels deep; "
                                        f"expected at most {MAX_NESTING} levels of parentheses and minus signs")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def fail(self, expected: str) -> ConstraintSyntaxError:
        token = self.peek()
        where = f"{token[1]!r} at column {token[2] + 1}" if token else "the end of the expression"
        return ConstraintSyntaxError(f"unexpected {where}; expected {expected}")

    def constraint(self) -> Constraint:
        operands = [self.sum()]
        ops: list[str] = []
        while (token := self.peek()) is not None and token[1] in _CMP:
            self.pos += 1
            ops.append(token[1])
            operands.append(self.sum())
        if self.peek() is not None:
            raise self.fail("an operator or a comparison")
        if not ops:
            raise ConstraintSyntaxError("no comparison found; expected e.g. 'top_k <= n_experts' "
                                        "(one of <= < >= > == !=)")
        for op, left, right in zip(ops, operands, operands[1:], strict=False):
            if op not in ("==", "!=") and (isinstance(left, _Str) or isinstance(right, _Str)):
                raise ConstraintSyntaxError(f"strings can only be compared with == or !=, not {op}")
        return Constraint(self.text, tuple(operands), tuple(ops))

    def sum(self) -> Any:
        node = self.product()
        while (token := self.peek()) is not None and token[1] in ("+", "-"):
            self.pos += 1
            node = _BinOp(token[1], node, self.product())
        return node

    def product(self) -> Any:
        node = self.unary()
        while (token := self.peek()) is not None and token[1] in ("*", "/"):
            self.pos += 1
            node = _BinOp(token[1], node, self.unary())
        return node

    def unary(self) -> Any:
        token = self.peek()
        if token is not None and token[1] == "-":
            self.pos += 1
            self.nested(token)
            node = _Neg(self.unary())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Any:
        token = self.peek()
        if token is None:
            raise self.fail("a name, a number or '('")
        kind, text, _ = token
        self.pos += 1
        if kind == "num":
            number = float(text)
            return _Num(int(number) if number.is_integer() and "." not in text and "e" not in text.lower()
                        else number)
        if kind == "name":
            if text in ("and", "or", "not", "if", "else", "lambda", "import"):
                self.pos -= 1
                raise self.fail("a field name (keywords are not part of the grammar)")
            return _Name(text)
        if kind == "str":
            return _Str(text[1:-1])
        if text == "(":
            self.nested(token)
            node = self.sum()
            closing = self.peek()
            if closing is None or closing[1] != ")":
                raise self.fail("')'")
            self.pos += 1
            self.depth -= 1
            return node
        self.pos -= 1
        raise self.fail("a name, a number or '('")


@functools.lru_cache(maxsize=1024)
def parse_constraint(text: str) -> Constraint:
    """Parse one constraint; raises ConstraintSyntaxError with what went wrong and what is accepted.
    Cached: a Constraint is immutable and the planner parses the same few texts for every candidate."""
    if not isinstance(text, str):
        raise ConstraintSyntaxError("a string such as 'top_k <= n_experts'")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ConstraintSyntaxError(f"an expression of at most {MAX_EXPRESSION_CHARS} characters")
    if not text.strip():
        raise ConstraintSyntaxError("a non-empty expression such as 'top_k <= n_experts'")
    return _Parser(text).constraint()
