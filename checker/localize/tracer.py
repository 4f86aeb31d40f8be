"""Watch the local variables of the user's own functions, statement by statement (``sys.settrace``).

Only frames whose code lives in one of the given files are watched; library code (numpy, torch)
runs untraced apart from the cheap call event. After each statement of a watched frame the
callback sees that frame's locals and the line of the statement that just ran, so a value that
changed since the previous callback was assigned by that statement.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

__all__ = ["FrameInfo", "TraceBudgetExceeded", "TracerFailed", "trace_call"]

#: Line events a single traced run may take before it is abandoned (a naive loop over a big case).
DEFAULT_BUDGET = 200_000

_SKIPPED = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<module>"})


class TraceBudgetExceeded(BaseException):
    """Raised inside user code when a traced run takes more line events than allowed.

    A BaseException so that a student's ``except Exception`` cannot swallow it.
    """


class TracerFailed(BaseException):
    """The harness's own callback raised (``__cause__`` holds why); never the user's fault."""


@dataclass
class FrameInfo:
    """One call of a watched function: a key unique within the run, its file, its name and its last line.

    ``extra["returned"]`` holds what it returned, once the "return" callback runs.
    """

    key: int
    filename: str
    function: str
    first_line: int
    last_line: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: ``callback(info, line, frame_locals, event)``: ``line`` is the statement that just ran (the def line
#: on "call"), ``event`` is "call", "line" or "return".
Callback = Callable[[FrameInfo, int, dict[str, Any], str], None]


def _safely(callback: Callback, info: FrameInfo, line: int, frame_locals: dict[str, Any], event: str) -> None:
    try:
        callback(info, line, frame_locals, event)
    except Exception as err:
        raise TracerFailed(f"{type(err).__name__}: {err}") from err


def trace_call(
    call: Callable[[], Any],
    files: Collection[str],
    callback: Callback,
    budget: int = DEFAULT_BUDGET,
) -> Any:
    """Run ``call()`` with the frames of ``files`` watched; returns what it returns, raises what it raises.

    Raises :class:`TraceBudgetExceeded` after ``budget`` line events. The previous trace function
    (a debugger, coverage) is restored afterwards.
    """
    watched = frozenset(files)
    counter = itertools.count()
    remaining = [budget]
    decided: dict[Any, bool] = {}

    def local_tracer(info: FrameInfo) -> Callable[[FrameType, str, Any], Any]:
        def tracer(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line" or event == "return":
                if event == "return":
                    info.extra["returned"] = arg
                remaining[0] -= 1
                if remaining[0] < 0:
                    raise TraceBudgetExceeded(f"more than {budget} traced lines")
                if info.last_line is not None:
                    _safely(callback, info, info.last_line, frame.f_locals, event)
                info.last_line = frame.f_lineno if event == "line" else None
            return tracer

        return tracer

    def global_tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        code = frame.f_code
        keep = decided.get(code)
        if keep is None:
            keep = code.co_filename in watched and code.co_name not in _SKIPPED
            decided[code] = keep
        if not keep:
            return None
        info = FrameInfo(next(counter), code.co_filename, code.co_qualname, code.co_firstlineno)
        _safely(callback, info, code.co_firstlineno, frame.f_locals, "call")
        return local_tracer(info)

    previous = sys.gettrace()
    sys.settrace(global_tracer)
    try:
        return call()
    finally:
        sys.settrace(previous)
