"""Reading YAML that a user hands over, safely: bounded in size, depth and expansion.

``yaml.safe_load`` builds no Python objects, but on its own it still accepts

- an alias bomb ("billion laughs"): a few lines whose nested aliases expand to billions of
  nodes the moment anything walks the result (validation, an error message's repr);
- nesting deep enough to end in a RecursionError;
- duplicate keys (the last one silently wins);
- ``1e3`` as the *string* "1e3" (YAML 1.1 floats need a dot);
- a file of any size;
- an integer with more digits than Python converts (a ValueError from deep inside PyYAML).

:func:`load_yaml` refuses all of these with a :class:`~batchenv.config.ConfigError` that names
the file, and reads ``1e3`` as a float. Aliases are refused unless ``allow_aliases`` (the
project's own hyperparameter files use ``<<: *default``); either way the expanded size is
bounded.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_YAML_BYTES", "YamlError", "comment_block", "load_yaml"]

MAX_YAML_BYTES = 1 << 20
"""Largest YAML file read (bytes)."""

MAX_NODES = 100_000
"""Most values (scalars, list items, mapping entries) in a loaded document, aliases expanded."""

MAX_DEPTH = 32
"""Deepest nesting of lists and mappings."""


class YamlError(ValueError):
    """A YAML document that :func:`load_yaml` refuses; the message says why."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with depth and alias limits, duplicate-key errors and exponent floats."""

    allow_aliases = False

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent) and not self.allow_aliases:
            event = self.peek_event()
            raise YamlError(f"line {event.start_mark.line + 1}: aliases (*name) are not allowed here")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlError(f"nesting deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise YamlError(f"line {key_node.start_mark.line + 1}: a mapping key must be a scalar")
            if key in seen:
                raise YamlError(f"line {key_node.start_mark.line + 1}: duplicate key {str(key)[:40]!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """An integer; YamlError naming the line when it has more digits than Python converts
        (``sys.get_int_max_str_digits()``, 4300 by default)."""
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise YamlError(
                f"line {node.start_mark.line + 1}: an integer of {len(node.value)} characters, more "
                f"digits than the {sys.get_int_max_str_digits()} allowed"
            ) from None


class _AliasLoader(_Loader):
    allow_aliases = True


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
for _cls in (_Loader, _AliasLoader):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))
    _cls.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _count_nodes(value: Any, budget: int) -> int:
    """Values in ``value`` with shared (aliased) parts counted each time they appear; stops
    (returning a number > ``budget``) as soon as the budget is exceeded, so it is O(budget)."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > budget:
            return count
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return count


def comment_block(lines: Sequence[str]) -> str:
    """``lines`` as YAML comment lines, each ending in a newline (``# `` is put before a line that
    does not start with ``#``). Characters that are not printable (a newline or a control character
    inside a command's argument, say) are written as escapes, so each given line stays one comment
    line and nothing in it is read as YAML."""
    printable = (_printable(line) for line in lines)
    return "".join(f"{line if line.startswith('#') else '# ' + line}\n" for line in printable)


def _printable(text: str) -> str:
    """``text`` with every non-printable character but the tab written as its Python escape."""
    return "".join(
        c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode("ascii") for c in text
    )


def _syntax_error_text(exc: yaml.YAMLError) -> str:
    """PyYAML's error in one line, where in the file first: ``line 3, column 1: expected ',' or
    ']', but got '<stream end>' (while parsing a flow sequence at line 2, column 12)``, without
    PyYAML's name for a text it was handed (``"<unicode string>"``) or its snippet of the text."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem is None:
        return " ".join(str(exc).split())

    def where(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    text = f"{where(exc.problem_mark)}: {exc.problem}" if exc.problem_mark is not None else exc.problem
    if exc.context:
        text += f" ({exc.context}" + (f" at {where(exc.context_mark)})" if exc.context_mark else ")")
    return " ".join(text.split())


def load_yaml(source: str | Path, *, allow_aliases: bool = False) -> Any:
    """Parse a YAML document (a path to a file, or the text itself) with the limits above.

    :raises YamlError: too large, not UTF-8, not valid YAML, too deep, an alias (unless
        ``allow_aliases``), too many values once aliases are expanded, or a duplicate key.
    """
    if isinstance(source, Path):
        size = source.stat().st_size
        if size > MAX_YAML_BYTES:
            raise YamlError(f"{size} bytes, at most {MAX_YAML_BYTES} allowed")
        try:
            text = source.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise YamlError(f"not UTF-8 text (byte {exc.start})") from None
    else:
        text = source
        if len(text) > MAX_YAML_BYTES:
            raise YamlError(f"{len(text)} characters, at most {MAX_YAML_BYTES} allowed")
    loader = (_AliasLoader if allow_aliases else _Loader)(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {_syntax_error_text(exc)[:300]}") from None
    except RecursionError:
        raise YamlError(f"nesting deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    if _count_nodes(data, MAX_NODES) > MAX_NODES:
        raise YamlError(f"more than {MAX_NODES} values (aliases expanded)")
    return data
