"""The backward's own steps: every local array of the user's backward, its final value and the
statement that last assigned it, in the order the backward computed them.

The backward runs in plain numpy under :mod:`~checker.localize.tracer`, limited to the user's files
(helpers it calls are watched too, each call on its own). After every statement, each local float
array is compared with what it was: a new object or new contents (``dscores /= N``,
``dx[mask] = 0``) is a new assignment by that statement. Besides plain locals, the entries of a
local dict (``grads["W1"] = ...``) and the array attributes of ``self`` (``self.dW = ...``) are
steps. An argument (``dout``, ``cache``) is a step only once the backward reassigns it (marked
``reassigned_argument``); another name for an array the backward was given (``dgammax = dout``) is
a step marked ``given``.
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from checker.localize.source import dict_key_line, return_element_reads, statement_at
from checker.localize.tracer import DEFAULT_BUDGET, FrameInfo, trace_call

__all__ = ["BackwardRun", "FrameReturn", "Step", "run_backward"]


@dataclass(frozen=True)
class Step:
    """One local array of the backward, as it was when the backward finished with it.

    ``name`` is what the user wrote (``dsqrtvar``, ``grads['W1']``, ``self.dW``); ``key`` is what is
    matched against forward names (``dsqrtvar``, ``W1``, ``dW``); ``container`` is the ``id`` of the
    dict holding an entry (0 for a plain local). ``line``/``source``: the statement that last
    assigned it and ``last_reads`` the names it reads; ``reads``: the names read by every statement
    that assigned it; ``order``: when.
    """

    name: str
    key: str
    value: np.ndarray
    file: str
    line: int
    source: str
    order: int
    reads: frozenset[str]
    frame: int
    function: str
    object_id: int
    container: int = 0
    last_reads: frozenset[str] = frozenset()
    given: bool = False  # another name for an array the backward was given (``dgammax = dout``)
    reassigned_argument: bool = False  # an argument the backward reassigned (``dout = dout * mask``)


@dataclass(frozen=True)
class FrameReturn:
    """What one watched call returned: per returned array, its ``id`` and the names its expression reads
    (``return dscores @ k, dv``). ``objects`` keeps the arrays alive, so that no id is reused."""

    frame: int
    elements: tuple[tuple[int, frozenset[str]], ...]
    objects: tuple[Any, ...] = ()


@dataclass(frozen=True)
class BackwardRun:
    """What the traced call returned, its steps in the order they were last assigned, and what each
    watched call returned."""

    returned: Any
    steps: tuple[Step, ...] = field(default_factory=tuple)
    returns: tuple[FrameReturn, ...] = field(default_factory=tuple)


@dataclass
class _Record:
    name: str
    key: str
    obj: Any
    snapshot: np.ndarray
    file: str
    line: int
    source: str
    order: int
    frame: int
    function: str
    argument: bool
    given: bool
    was_argument: bool
    container: int = 0
    reads: set[str] = field(default_factory=set)
    last_reads: frozenset[str] = frozenset()


def _is_float_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def _same(snapshot: np.ndarray, value: np.ndarray) -> bool:
    return snapshot.shape == value.shape and np.array_equal(snapshot, value, equal_nan=True)


def _reachable_arrays(value: Any, found: set[int], depth: int = 0) -> None:
    """Ids of the arrays inside ``value`` (tuples, lists, dicts, object attributes; a few levels deep)."""
    if depth > 4:
        return
    if isinstance(value, np.ndarray):
        found.add(id(value))
    elif isinstance(value, (tuple, list)):
        for item in value:
            _reachable_arrays(item, found, depth + 1)
    elif isinstance(value, dict):
        for item in list(value.values()):
            _reachable_arrays(item, found, depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict):
            _reachable_arrays(attributes, found, depth + 1)


def run_backward(
    call: Callable[[], Any], files: Collection[str], budget: int = DEFAULT_BUDGET
) -> BackwardRun:
    """Run ``call()`` (the user's backward, or a loss function whose second half is its backward)
    watching the frames of ``files``. What the user's code raises propagates (a
    :class:`~checker.localize.tracer.TraceBudgetExceeded` past ``budget`` lines)."""
    records: dict[tuple[Any, ...], _Record] = {}
    counter = itertools.count()
    given: set[int] = set()  # arrays that existed before the call (the cache, dout, a model's params)
    first_call = [True]
    returns: list[FrameReturn] = []

    def note(
        key: tuple[Any, ...],
        name: str,
        match_key: str,
        value: np.ndarray,
        info: FrameInfo,
        line: int,
        event: str,
        container: int = 0,
        reads: frozenset[str] = frozenset(),
        source: str = "",
    ) -> None:
        record = records.get(key)
        if record is not None and record.obj is value and _same(record.snapshot, value):
            return
        if record is None:
            record = _Record(
                name, match_key, value, value.copy(), info.filename, line, source, next(counter),
                info.key, info.function, event == "call", id(value) in given, event == "call", container,
            )  # fmt: skip
            records[key] = record
        else:
            record.obj, record.snapshot = value, value.copy()
            record.line, record.source, record.order = line, source, next(counter)
            record.argument = record.given = False
        record.reads |= reads
        record.last_reads = reads

    def watch(info: FrameInfo, line: int, frame_locals: dict[str, Any], event: str) -> None:
        if first_call[0]:
            first_call[0] = False
            _reachable_arrays(dict(frame_locals), given)
        statement = statement_at(info.filename, line) if event != "call" else None
        where = statement.first if statement else line
        reads = statement.reads if statement else frozenset()
        text = statement.text if statement else ""
        for name, value in frame_locals.items():
            if _is_float_array(value):
                note((info.key, name), name, name, value, info, where, event, 0, reads, text)
            elif isinstance(value, dict):
                for entry, item in list(value.items()):
                    if isinstance(entry, str) and _is_float_array(item):
                        at = dict_key_line(info.filename, statement, entry) if statement else line
                        label = f"{name}[{entry!r}]"
                        entry_text = text
                        if statement is not None and statement.last > statement.first:
                            entry_text = linecache.getline(info.filename, at).strip().rstrip(",")
                        note(
                            (info.key, name, entry),
                            label,
                            entry,
                            item,
                            info,
                            at,
                            event,
                            id(value),
                            reads,
                            entry_text,
                        )
        owner = frame_locals.get("self")
        attributes = getattr(owner, "__dict__", None) if owner is not None else None
        if isinstance(attributes, dict):
            for name, value in list(attributes.items()):
                if _is_float_array(value):
                    note(
                        ("self", id(owner), name),
                        f"self.{name}",
                        name,
                        value,
                        info,
                        where,
                        event,
                        0,
                        reads,
                        text,
                    )
        if event == "return":
            returns.append(_frame_return(info, line))

    returned = trace_call(call, files, watch, budget)
    _settle_aliases(list(records.values()))
    steps = [_step(r) for r in records.values() if not r.argument]
    return BackwardRun(returned, tuple(sorted(steps, key=lambda s: s.order)), tuple(returns))


def _frame_return(info: FrameInfo, line: int) -> FrameReturn:
    value = info.extra.get("returned")
    elements = (
        list(value.values())
        if isinstance(value, dict)
        else list(value)
        if isinstance(value, tuple)
        else [value]
    )
    reads = return_element_reads(info.filename, line)
    if len(reads) != len(elements):  # one expression for several values: each reads all its names
        reads = [frozenset().union(*reads)] * len(elements)
    kept = [(e, r) for e, r in zip(elements, reads, strict=True) if isinstance(e, np.ndarray)]
    return FrameReturn(info.key, tuple((id(e), r) for e, r in kept), tuple(e for e, _ in kept))


def _step(r: _Record) -> Step:
    return Step(
        r.name, r.key, r.snapshot, r.file, r.line, r.source, r.order, frozenset(r.reads), r.frame,
        r.function, id(r.obj), r.container, r.last_reads, r.given, r.was_argument,
    )  # fmt: skip


def _settle_aliases(records: list[_Record]) -> None:
    """An array changed after its frame stopped watching it (a helper's ``dscores``, divided by N in
    its caller under the same or another name): its final value and the statement that last changed
    it are those seen through its other names."""
    by_object: dict[int, list[_Record]] = {}
    for record in records:
        by_object.setdefault(id(record.obj), []).append(record)
    for record in records:
        if _same(record.snapshot, record.obj):
            continue
        latest = max(by_object[id(record.obj)], key=lambda r: r.order)
        record.snapshot = record.obj.copy()
        if latest is not record and _same(latest.snapshot, record.obj):
            record.file, record.line, record.source = latest.file, latest.line, latest.source
            record.order = latest.order
            record.argument = record.given = False
