"""A trace call's answer, checked: the student's backward steps as the localize engine's ``Step`` records.

The worker (``worker_trace.py``) runs in a process the student controls, so what it says about the
steps is data to check, never to believe. Two stages:

1. :func:`read_trace` (on arrival, with the frame's blobs): types and bounds. Names are identifiers
   (``dxhat``, ``self.dW``, ``grads['W1']``) of bounded length; lines, frames, orders and objects are
   ints in range; ``depends`` only points at earlier steps; at most :data:`MAX_STEPS` steps whose
   values are plain finite float arrays (read by :func:`checker.grading.frames.value`), at most
   :data:`MAX_ENTRIES` entries in all. Anything else: the whole trace is refused (``None``).
2. :func:`steps_of` (when judging, with the submission's source as the grader read it before the run):
   every file is one of the submission's, every line inside it; the statement's text and the names it
   reads come from the grader's own copy (parsed once, under the parse lock), never from the worker.

A refused trace costs the student nothing but the localisation: the generic hint stays.
"""

from __future__ import annotations

import io
import linecache
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from checker.grading.imports import PARSE_LOCK, parse_source
from checker.grading.records import Value, clean_text
from checker.localize import source as engine_source
from checker.localize.source import statement_at
from checker.localize.steps import FrameReturn, Step

__all__ = [
    "MAX_ENTRIES",
    "MAX_STEPS",
    "WireStep",
    "WireTrace",
    "read_trace",
    "sources_registered",
    "steps_of",
]

MAX_STEPS = 200
MAX_ENTRIES = 2_000_000
_MAX_RETURNS = 64
_MAX_LIST = 64
_MAX_INT = 10**9
_MAX_LINE = 10**7
_MAX_NDIM = 8
_IDENTIFIER = r"[^\W\d]\w{0,99}"
_NAME = re.compile(rf"(?:self\.)?{_IDENTIFIER}|{_IDENTIFIER}\['{_IDENTIFIER}'\]")


@dataclass(frozen=True, eq=False)
class WireStep:
    """One step as the worker described it, checked for type and bounds (not yet against the source)."""

    name: str
    key: str
    file: str
    line: int
    function: str
    frame: int
    order: int
    object: int
    in_gradients: bool
    given: bool
    reassigned_argument: bool
    depends: tuple[int, ...]
    value: np.ndarray


@dataclass(frozen=True, eq=False)
class WireTrace:
    """The checked steps, per watched call the returned arrays (object, names read), and the objects of
    the returned gradients in the order the student returned them."""

    steps: tuple[WireStep, ...]
    returns: tuple[tuple[int, tuple[tuple[int, frozenset[str]], ...]], ...]
    gradients: tuple[int, ...]


class _Refused(Exception):
    pass


def _int(value: Any, low: int = 0, high: int = _MAX_INT) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _Refused(f"not an int in [{low}, {high}]")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Refused("not a bool")
    return value


def _identifier(value: Any) -> str:
    if not (isinstance(value, str) and len(value) <= 100 and value.isidentifier()):
        raise _Refused("not an identifier")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Refused("not a text")
    return value


def _list(value: Any, limit: int = _MAX_LIST) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise _Refused("not a short list")
    return value


#: ``(value record, blobs) -> Value``: :func:`checker.grading.frames.value`, the one reader of arrays.
ReadValue = Callable[[Any, list[bytes]], Value]


def _array(info: Any, blobs: list[bytes], read_value: ReadValue) -> np.ndarray:
    array = read_value(info, blobs).array
    if array is None or array.dtype.kind != "f" or array.ndim > _MAX_NDIM or not np.isfinite(array).all():
        raise _Refused("not a finite float array")
    return np.asarray(array, dtype=np.float64)


def _step(info: Any, index: int, blobs: list[bytes], read_value: ReadValue) -> WireStep:
    if not isinstance(info, dict):
        raise _Refused("a step is not a record")
    name = info.get("name")
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        raise _Refused("a step's name is not an identifier")
    key = info.get("key")
    if not (isinstance(key, str) and key.isidentifier() and len(key) <= 100):
        raise _Refused("a step's key is not an identifier")
    file = info.get("file")
    if not (isinstance(file, str) and 0 < len(file) <= 100 and file.endswith(".py")):
        raise _Refused("a step's file is not a submission file")
    depends = tuple(_int(j, 0, index - 1) for j in _list(info.get("depends")))
    return WireStep(
        name=name,
        key=key,
        file=file,
        line=_int(info.get("line"), 1, _MAX_LINE),
        function=clean_text(_text(info.get("function")), 100),
        frame=_int(info.get("frame")),
        order=_int(info.get("order")),
        object=_int(info.get("object")),
        in_gradients=_bool(info.get("in_gradients")),
        given=_bool(info.get("given")),
        reassigned_argument=_bool(info.get("reassigned_argument")),
        depends=depends,
        value=_array(info.get("value"), blobs, read_value),
    )


def read_trace(info: Any, blobs: list[bytes], read_value: ReadValue) -> WireTrace | None:
    """The worker's description of a traced backward, checked; ``None`` when anything is off.
    ``read_value``: how a value record becomes an array (:func:`checker.grading.frames.value`)."""
    try:
        if not isinstance(info, dict):
            return None
        raw_steps = _list(info.get("steps"), MAX_STEPS)
        steps = tuple(_step(s, i, blobs, read_value) for i, s in enumerate(raw_steps))
        if sum(s.value.size for s in steps) > MAX_ENTRIES:
            return None
        orders = [s.order for s in steps]
        if orders != sorted(set(orders)):
            return None  # the backward's order, each step once
        returns = []
        for entry in _list(info.get("returns"), _MAX_RETURNS):
            if not isinstance(entry, dict):
                return None
            elements = tuple(
                (_int(e.get("object")), frozenset(_identifier(n) for n in _list(e.get("reads"))))
                for e in _list(entry.get("elements"))
                if isinstance(e, dict)
            )
            returns.append((_int(entry.get("frame")), elements))
        gradients = tuple(_int(g) for g in _list(info.get("gradients")))
        return WireTrace(steps, tuple(returns), gradients)
    except (_Refused, TypeError, ValueError, OverflowError, RecursionError, MemoryError):
        return None  # (a JSON value nested too deep to print where a text was expected, say)


@contextmanager
def sources_registered(sources: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """The submission's files (relative path -> text, as the grader read them) under private paths
    that the engine's source reader sees (``linecache``), for as long as the block runs; yields
    relative path -> private path. A file that does not parse is left out."""
    token = f"<graded {uuid.uuid4().hex}>"
    paths: dict[str, str] = {}
    for relative, text in sources.items():
        try:
            parse_source(text)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        path = f"{token}/{relative}"
        # Lines as Python and linecache count them (not str.splitlines, which also breaks at \f, \x1c, \u2028 ...)
        lines = io.StringIO(text, newline=None).readlines()
        linecache.cache[path] = (len(text), None, lines, path)
        paths[relative] = path
    try:
        yield paths
    finally:
        for path in paths.values():
            linecache.cache.pop(path, None)
        engine_source._statements.cache_clear()  # a student's parsed files are not kept past their hint


def _statement(path: str, line: int) -> tuple[str, frozenset[str]]:
    with PARSE_LOCK:  # the engine's reader parses the file (once): one thread at a time, as the grader does
        statement = statement_at(path, line)
    if statement.first == line:
        return statement.text, statement.reads
    return linecache.getline(path, line).strip().rstrip(","), statement.reads  # an entry of a dict literal


def steps_of(trace: WireTrace, paths: Mapping[str, str]) -> tuple[list[Step], list[FrameReturn]] | None:
    """The engine's steps and returns of a checked trace, with each statement read from the grader's
    copy (``paths`` from :func:`sources_registered`); ``None`` when a file or line is not the
    submission's. Objects are numbered from 1; a step in the returned gradient dict has container 1."""
    steps: list[Step] = []
    for wire in trace.steps:
        path = paths.get(wire.file)
        if path is None or wire.line > len(linecache.getlines(path)):
            return None
        source, last_reads = _statement(path, wire.line)
        reads = last_reads | {trace.steps[j].name.split("[")[0] for j in wire.depends}
        steps.append(
            Step(
                name=wire.name,
                key=wire.key,
                value=wire.value,
                file=path,
                line=wire.line,
                source=source,
                order=wire.order,
                reads=frozenset(reads),
                frame=wire.frame,
                function=wire.function,
                object_id=wire.object + 1,
                container=1 if wire.in_gradients else 0,
                last_reads=last_reads,
                given=wire.given,
                reassigned_argument=wire.reassigned_argument,
            )
        )
    returns = [
        FrameReturn(frame, tuple((obj + 1, reads) for obj, reads in elements))
        for frame, elements in trace.returns
    ]
    return steps, returns
