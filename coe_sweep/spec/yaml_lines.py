"""Line-aware YAML reading for sweep specs: data plus the source line of every key and item.

PyYAML's `compose` gives a node tree whose nodes remember where they start; this module builds the
plain Python data from it (via SafeLoader's constructors) and, alongside, a map from each path
(a tuple of mapping keys and list indices) to its 1-based line, so that a validation error found
later on the data can point at the line that holds the offending key.

Two deviations from PyYAML's SafeLoader, both to make specs less surprising:
- floats follow YAML 1.2: `1e13` and `3e-3` are floats (YAML 1.1, and so PyYAML, reads them as
  strings because they lack a dot);
- duplicate keys in one mapping are an error (PyYAML silently keeps the last one).
Every document is bounded before Python's own limits are reached, so that no input ends in a traceback:
size (MAX_DOCUMENT_BYTES), node count after alias expansion (MAX_NODES: an alias bomb), nesting depth
(MAX_DEPTH: PyYAML composes recursively), number length (MAX_NUMBER_CHARS: Python refuses to convert
integers of more than 4,300 digits), and an alias used inside the node it names (`d: &a [*a]`, a
structure that contains itself) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

Path = tuple[str | int, ...]

MAX_DOCUMENT_BYTES = 1_000_000
MAX_NODES = 100_000
MAX_DEPTH = 64  # nesting levels of mappings and lists; a spec needs about 6
MAX_NUMBER_CHARS = 40  # digits of an integer literal; larger values are written as floats (1e40)

_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class YamlLocationError(Exception):
    """A YAML document that cannot be read; `line` is 1-based (0 when unknown)."""

    def __init__(self, line: int, message: str, expected: str = "well-formed YAML") -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.expected = expected


def _too_deep(line: int) -> YamlLocationError:
    return YamlLocationError(line, f"a value nested more than {MAX_DEPTH} levels deep",
                             f"at most {MAX_DEPTH} levels of nested mappings and lists")


class SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats (`1e13` is a float) that refuses nesting deeper than MAX_DEPTH while
    composing (PyYAML's composer recurses once per level, so the check must come before Python's limit)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _too_deep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# Rebuild the implicit resolvers without the YAML 1.1 float rule, then add the 1.2-style one.
SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _check_number_length(node: yaml.ScalarNode) -> None:
    if len(str(node.value)) > MAX_NUMBER_CHARS:
        raise YamlLocationError(node.start_mark.line + 1, f"a number written with {len(str(node.value))} characters",
                                f"a number of at most {MAX_NUMBER_CHARS} characters (write large values as 1e40)")


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node))
    if re.fullmatch(r"[-+]?[0-9][0-9_]*", text):  # '1' resolved as float only via our regex: keep int
        _check_number_length(node)
        return int(text.replace("_", ""))
    return yaml.SafeLoader.construct_yaml_float(loader, node)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    _check_number_length(node)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


SpecLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
SpecLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


@dataclass
class LocatedData:
    data: Any
    lines: dict[Path, int]

    def line_of(self, path: Path) -> int:
        """Line of the longest prefix of `path` that the document has (1 for the document itself)."""
        for cut in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return self.lines.get((), 1)


def load_located(text: str) -> LocatedData:
    """Parse one YAML document into data plus the line of every key and list item."""
    if len(text.encode("utf-8", errors="replace")) > MAX_DOCUMENT_BYTES:
        raise YamlLocationError(1, f"{len(text.encode('utf-8', errors='replace'))} bytes",
                                f"a document of at most {MAX_DOCUMENT_BYTES} bytes")
    try:
        node = yaml.compose(text, Loader=SpecLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise YamlLocationError(line, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlLocationError(0, f"YAML syntax error: {exc}") from None
    if node is None:
        return LocatedData(None, {(): 1})
    lines: dict[Path, int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines, [0], set())
    loader = SpecLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlLocationError(mark.line + 1 if mark else 0, f"YAML error: {exc.problem}") from None
    finally:
        loader.dispose()
    return LocatedData(data, lines)


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int], count: list[int], inside: set[int]) -> None:
    """Line of every key and item, with aliases expanded: bounded in node count and depth, and refusing a
    node that contains itself. `inside` holds the ids of the nodes on the way down to `node`."""
    count[0] += 1
    here = lines.get(path, node.start_mark.line + 1)
    if count[0] > MAX_NODES:  # reported at the top-level key whose value expands too far
        raise YamlLocationError(lines.get(path[:1], node.start_mark.line + 1),
                                f"the document expands to more than {MAX_NODES} nodes (alias bomb?)",
                                f"at most {MAX_NODES} values once aliases are expanded")
    if len(path) > MAX_DEPTH:  # aliases can nest deeper than the text does: reported at the top-level key
        raise _too_deep(lines.get(path[:1], here))
    if id(node) in inside:
        raise YamlLocationError(here, "an alias used inside the node its anchor names (a value that contains "
                                      "itself)", "an alias that refers to a node defined before it and outside it")
    if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        return
    inside.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _walk(value_node, path, lines, count, inside)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlLocationError(line, f"duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, count, inside)
    else:
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), lines, count, inside)
    inside.discard(id(node))


def parse_scalar(text: str) -> Any:
    """A `--set` value: one YAML flow value (`4`, `1e13`, `[1, 2]`, `{min: 1}`, `null`, `true`), read with the
    same bounds as a spec file."""
    if not text.strip():
        return ""
    try:
        return load_located(text).data
    except YamlLocationError as exc:
        raise YamlLocationError(0, exc.message if exc.expected != "well-formed YAML" else
                                f"not a YAML value: {exc.message}", exc.expected) from None
