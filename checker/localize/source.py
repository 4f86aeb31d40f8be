"""The user's source, read as statements: which statement a line belongs to, its text, the names it reads.

A traced line number is mapped to the simple statement that contains it (a multi-line
``np.concatenate([...],\\n axis=1)`` is one statement, reported at its first line). Files are parsed
once and remembered; code without a readable file (``exec``) has no statements and gives ``""``.
"""

from __future__ import annotations

import ast
import functools
import linecache
import re
import textwrap
from dataclasses import dataclass

__all__ = ["Statement", "dict_key_line", "return_element_reads", "statement_at"]

_MAX_TEXT = 120  # characters of a statement shown in a message
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # a line as the parser counts them


@dataclass(frozen=True)
class Statement:
    """One simple statement: its first and last line, its text on one line, the names it reads."""

    first: int
    last: int
    text: str
    reads: frozenset[str]


def _one_line(source: str) -> str:
    text = " ".join(part.strip() for part in source.splitlines())
    text = text.replace("( ", "(").replace("[ ", "[").replace(" )", ")").replace(" ]", "]")
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _reads(node: ast.AST) -> frozenset[str]:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        names.add(node.target.id)  # x += y reads x
    for target in _subscript_targets(node):
        names.add(target)  # dx[mask] = 0 keeps the rest of dx
    return frozenset(names)


def _subscript_targets(node: ast.AST) -> list[str]:
    targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
    found = []
    for target in targets:
        while isinstance(target, (ast.Subscript, ast.Attribute)):
            target = target.value
            if isinstance(target, ast.Name):
                found.append(target.id)
    return found


def _segment(lines: list[str], node: ast.stmt) -> str:
    """``ast.get_source_segment(source, node)`` for a source already split into ``lines`` (the
    standard one splits the whole source again on every call: quadratic in a file's length)."""
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    start, end = node.col_offset, node.end_col_offset
    if end is None or last >= len(lines):
        return ""
    if first == last:
        return lines[first].encode()[start:end].decode(errors="replace")
    head = lines[first].encode()[start:].decode(errors="replace")
    tail = lines[last].encode()[:end].decode(errors="replace")
    return "".join([head, *lines[first + 1 : last], tail])


@functools.lru_cache(maxsize=256)
def _statements(filename: str, stamp: int) -> dict[int, Statement]:
    """Line -> the innermost simple statement covering it, for one file (``stamp`` invalidates the cache)."""
    lines = linecache.getlines(filename)
    if not lines:
        return {}
    source = "".join(lines)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    found: dict[int, Statement] = {}
    parsed_lines = _LINE.findall(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        ):
            continue
        compound = hasattr(node, "body")
        first, last = node.lineno, (node.end_lineno or node.lineno)
        if compound:
            last = first  # only the header line (for x in ..., if ...:) belongs to the statement
        text = _one_line(_segment(parsed_lines, node) if not compound else lines[first - 1])
        statement = Statement(first, last, text, _reads(node) if not compound else frozenset())
        for line in range(first, last + 1):
            current = found.get(line)
            # Nested simple statements cannot overlap; a header keeps its own line.
            if current is None or (current.last - current.first) > (last - first):
                found[line] = statement
    return found


def _stamp(filename: str) -> int:
    lines = linecache.getlines(filename)
    return hash(tuple(lines[:3])) ^ len(lines)


def statement_at(filename: str, line: int) -> Statement:
    """The statement that covers ``line`` of ``filename`` (the line alone when the file cannot be parsed)."""
    found = _statements(filename, _stamp(filename)).get(line)
    if found is not None:
        return found
    text = linecache.getline(filename, line).strip()
    return Statement(line, line, _one_line(text), frozenset())


def dict_key_line(filename: str, statement: Statement, key: str) -> int:
    """The line of ``"key":`` inside a dict literal of ``statement`` (its first line when not found)."""
    lines = linecache.getlines(filename)
    if not lines:
        return statement.first
    segment = "".join(lines[statement.first - 1 : statement.last])
    for offset, text in enumerate(segment.splitlines()):
        if f'"{key}"' in text or f"'{key}'" in text:
            return statement.first + offset
    return statement.first


def return_element_reads(filename: str, line: int) -> list[frozenset[str]]:
    """For the ``return`` statement covering ``line``: the names each returned element reads
    (``return dscores @ k, dv`` gives ``[{dscores, k}, {dv}]``); one set for a single value, ``[]``
    when there is no such statement."""
    lines = linecache.getlines(filename)
    statement = statement_at(filename, line)
    if not lines:
        return []
    try:
        tree = ast.parse(textwrap.dedent("".join(lines[statement.first - 1 : statement.last])))
    except SyntaxError:
        return []
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.Return) or node.value is None:
        return []
    value = node.value
    elements = (
        value.elts
        if isinstance(value, ast.Tuple)
        else value.values
        if isinstance(value, ast.Dict)
        else [value]
    )
    return [_reads(element) for element in elements]
