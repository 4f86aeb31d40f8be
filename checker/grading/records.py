"""The records of grading: the limits and calls sent to a worker, and what came back.

Plain data (JSON-serialisable requests, numpy arrays that were checked on arrival); the sandbox
fills them, the judge reads them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from checker.grading.imports import ForbiddenImport

__all__ = [
    "Call",
    "CallError",
    "CallResult",
    "Limits",
    "Returned",
    "SubmissionRun",
    "Value",
    "clean_text",
    "skipped_folder",
]


# ------------------------------------------------------------------------------------ the request


@dataclass(frozen=True)
class Limits:
    """Per-submission limits. ``cpu_s=None`` means ``timeout_s + 1``, so a busy loop meets the wall clock
    first. ``memory_mb`` is address space (RLIMIT_AS), which numpy with one BLAS thread fits in easily.
    ``tmpfs_mb`` caps the sandbox's private ``/tmp`` and ``/dev/shm`` (each): filling them hurts only this run."""

    timeout_s: float = 60.0
    cpu_s: float | None = None
    memory_mb: int = 2048
    max_output_bytes: int = 64 * 2**20
    max_log_bytes: int = 64 * 2**10
    max_processes: int = 16
    max_file_bytes: int = 16 * 2**20
    tmpfs_mb: int = 64

    def __post_init__(self) -> None:
        for name in (
            "timeout_s",
            "cpu_s",
            "memory_mb",
            "max_output_bytes",
            "max_log_bytes",
            "max_file_bytes",
            "tmpfs_mb",
        ):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"Limits({name}={value!r}): must be a positive number")
        if self.memory_mb < 256:
            raise ValueError(
                f"Limits(memory_mb={self.memory_mb!r}): the worker itself (python + numpy) needs about "
                "100 MB of address space; use at least 256"
            )
        if not (isinstance(self.max_processes, int) and self.max_processes >= 0):
            raise ValueError(f"Limits(max_processes={self.max_processes!r}): must be an int >= 0")

    def for_worker(self) -> dict[str, Any]:
        cpu = self.cpu_s if self.cpu_s is not None else self.timeout_s + 1
        return {**asdict(self), "cpu_s": math.ceil(cpu)}


@dataclass(frozen=True)
class Call:
    """One thing the worker runs, referring to the grader's arrays by name (JSON-serialisable).

    - ``style="layer"``: ``forward(*inputs, **hyper) -> (out..., cache)`` with ``outputs`` outputs, then,
      when ``douts`` is given (one per output), ``backward(*douts, cache)``. No douts: forward only.
    - ``style="loss"``: ``value_and_grad(*inputs, **hyper) -> (loss, grads)``.
    - ``style="model"``: ``obj = model(**init)``; ``obj.params[key.rsplit("/", 1)[-1]] = arrays[key]`` for
      each key of ``params`` (cases send ``"net/0/W1"``, ``"net/1/W1"``); ``getattr(obj, method)(*inputs, **hyper) -> (loss, grads)``.

    ``hyper`` and ``init`` are JSON; ``{"$array": "running_mean"}`` anywhere inside stands for a copy
    of that array (cs231n's ``bn_param``). ``repeat_backward`` runs backward (loss/model: the whole
    call, with params reset) a second time on fresh copies, to expose state that accumulates.
    ``trace`` runs the backward (loss/model: the call) under the localize engine's tracer and sends its
    steps back (``CallResult.trace``): feedback only, never scored.
    """

    id: str
    style: Literal["layer", "loss", "model"]
    inputs: tuple[str, ...] = ()
    forward: str | None = None
    backward: str | None = None
    value_and_grad: str | None = None
    model: str | None = None
    method: str = "loss"
    init: dict[str, Any] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    hyper: dict[str, Any] = field(default_factory=dict)
    outputs: int = 1
    douts: tuple[str, ...] = ()
    repeat_backward: bool = False
    trace: bool = False

    def __post_init__(self) -> None:
        for name in ("inputs", "params", "douts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        where = f"Call(id={self.id!r})"
        needed = {"layer": ("forward",), "loss": ("value_and_grad",), "model": ("model",)}
        if self.style not in needed:
            raise ValueError(f"{where}: style={self.style!r}; use 'layer', 'loss' or 'model'")
        for name in needed[self.style] + (("backward",) if self.style == "layer" and self.douts else ()):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{where}: style={self.style!r} needs {name}= (a function or class name)")
        if not (isinstance(self.outputs, int) and self.outputs >= 1):
            raise ValueError(f"{where}: outputs={self.outputs!r} must be an int >= 1")
        if self.style == "layer" and self.douts and len(self.douts) != self.outputs:
            raise ValueError(
                f"{where}: {len(self.douts)} douts for outputs={self.outputs}; give one dout per output"
            )
        try:
            json.dumps([self.hyper, self.init], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: hyper and init must be JSON ({exc}); pass arrays as {{'$array': name}}"
            ) from None

    def array_names(self) -> list[str]:
        """Every key of ``arrays`` this call uses, including ``$array`` references."""
        names = [*self.inputs, *self.douts, *self.params]

        def refs(value: Any) -> None:
            if isinstance(value, dict):
                if set(value) == {"$array"}:
                    names.append(value["$array"])
                else:
                    for item in value.values():
                        refs(item)
            elif isinstance(value, list):
                for item in value:
                    refs(item)

        refs(self.hyper)
        refs(self.init)
        return names

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "inputs": list(self.inputs),
            "params": list(self.params),
            "douts": list(self.douts),
        }


# ------------------------------------------------------------------------------------ the results


@dataclass(frozen=True, eq=False)
class Value:
    """One value the student returned. ``array`` is a plain float64/int64/bool ndarray, or None when the
    value was refused; then ``error`` says why, phrased to follow a name: ``"dw " + error``."""

    type: str
    array: np.ndarray | None
    error: str | None = None
    dtype: str = ""

    def message(self, name: str) -> str:
        return f"{name} {self.error}" if self.error else f"{name} is {article(self.type)} {self.type}"


@dataclass(frozen=True, eq=False)
class Returned:
    """A returned gradient set as the student structured it: ``structure`` is ``tuple``, ``list``
    (keys "0", "1", ...), ``dict`` (the student's keys), ``array`` (one bare value, key ""), ``none`` or
    ``other`` (key ""). Mapping keys to input names is the scorer's job."""

    structure: str
    keys: tuple[str, ...]
    values: tuple[Value, ...]

    def items(self) -> list[tuple[str, Value]]:
        return list(zip(self.keys, self.values, strict=True))

    def __getitem__(self, key: str) -> Value:
        return self.values[self.keys.index(key)]


@dataclass(frozen=True)
class CallError:
    """Why a call failed. ``type`` is the exception class ("" when the harness found the problem, e.g.
    a missing function); ``phase`` is lookup, forward, backward, backward_again, init, loss,
    loss_again, import, encode, or worker (the process died, timed out or never reached the call)."""

    type: str
    message: str
    phase: str
    file: str = ""
    line: int = 0
    traceback: str = ""

    @property
    def summary(self) -> str:
        head = f"{self.type}: {self.message}" if self.type else self.message
        return f"{head} ({self.file} line {self.line})" if self.file and self.line else head


@dataclass(frozen=True, eq=False)
class CallResult:
    """What one call produced. ``status``: ``ok`` (no exception; values may still be refused or wrong),
    ``error`` (see ``error``), ``not_run`` (the worker ended before reaching it).
    ``inputs_after`` / ``douts_after`` / ``hyper_after`` hold the arrays the student was given, as they
    are after the calls (compare with what was sent to detect in-place mutation); model params are in
    ``inputs_after`` under their names."""

    id: str
    status: Literal["ok", "error", "not_run"]
    outputs: tuple[Value, ...] = ()
    loss: Value | None = None
    gradients: Returned | None = None
    loss_again: Value | None = None
    gradients_again: Returned | None = None
    inputs_after: Mapping[str, Value] = field(default_factory=dict)
    douts_after: Mapping[str, Value] = field(default_factory=dict)
    hyper_after: Mapping[str, Value] = field(default_factory=dict)
    error: CallError | None = None
    seconds: float = 0.0
    trace: Any = None  # a trace call's steps, as read by ``traced_steps.read_trace`` (None otherwise)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, eq=False)
class SubmissionRun:
    """Everything one submission's worker produced. ``completed``: the worker ran every call and said
    so. ``timed_out``: wall clock (``timeout_s``) or CPU time (``cpu_s``) ran out. ``memory_exceeded``:
    a MemoryError was raised (RLIMIT_AS). ``crashed``: killed by a signal the grader did not send
    (``signal`` names it, e.g. ``"SIGSEGV"``). ``worker_error`` is a harness failure, not the student's;
    ``protocol_error`` means the worker's messages became unreadable (the student wrote to the result
    pipe, or sent more than ``max_output_bytes``). ``isolation`` is what the worker reports it set up
    before any student code ran (``uid``, ``no_new_privs``, the rlimits in ``limits``): information, not
    relied on. ``sandbox`` describes the sandbox the grader made (or says there was none). ``seconds``
    is the grader's own wall-clock measure of the run."""

    submission: str
    calls: Mapping[str, CallResult]
    completed: bool
    timed_out: bool = False
    memory_exceeded: bool = False
    crashed: bool = False
    exit_code: int | None = None
    signal: str | None = None
    import_errors: tuple[CallError, ...] = ()
    forbidden_imports: tuple[ForbiddenImport, ...] = ()
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    worker_error: str | None = None
    protocol_error: str | None = None
    isolation: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    seconds: float = 0.0
    sandbox: str = ""

    @property
    def import_error(self) -> str | None:
        """``"layers.py line 3: SyntaxError: invalid syntax"`` (all failing modules, ``; ``-joined)."""
        if not self.import_errors:
            return None
        parts = []
        for e in self.import_errors:
            where = f"{e.file} line {e.line}: " if e.line else (f"{e.file}: " if e.file else "")
            parts.append(f"{where}{e.type}: {e.message}" if e.type else f"{where}{e.message}")
        return "; ".join(parts)


# Characters that XML 1.0 forbids or that terminals and CSV readers act on: C0 controls but tab and
# newline, DEL and C1 controls, lone surrogates, and the two non-characters U+FFFE / U+FFFF; and the
# invisible ones that reorder or break what follows on display (bidi marks, overrides and isolates,
# the Unicode line and paragraph separators: "trojan source").
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)


def skipped_folder(name: str) -> bool:
    """A folder of a submission that is never copied, shipped or read: ``__pycache__`` and hidden ones."""
    return name == "__pycache__" or name.startswith(".")


def clean_text(value: object, limit: int = 1000) -> str:
    """``value`` as text that is safe in XML, JSON and CSV: unsafe characters become ``?`` (``\r`` is
    dropped), cut to ``limit`` characters. Every text that comes from a worker passes through here."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = _UNSAFE.sub(lambda m: "" if m.group() == "\r" else "?", text[: limit + 1])
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"
