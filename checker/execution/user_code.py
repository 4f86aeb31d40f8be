"""User code as the harness meets it: what it may raise, and a time limit on it.

A leaf module (standard library only): the registry, the execution room and the oracles all use it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["USER_ERRORS", "UserError", "UserTimeout", "describe_exception", "time_limit"]


#: What user code may raise and the harness turns into an error row: ``sys.exit()`` inside a forward
#: must not end the whole run (nor make a CI gate exit 0). KeyboardInterrupt still stops everything.
USER_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit, GeneratorExit)


class UserTimeout(BaseException):
    """Raised inside user code that runs past its time limit (a BaseException: ``except Exception`` in
    user code cannot swallow it)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the body with :class:`UserTimeout` after ``seconds`` (main thread only; elsewhere no limit).

    A hang inside one long C call (a huge matrix product) ends when that call returns.
    """
    usable = seconds is not None and seconds > 0 and threading.current_thread() is threading.main_thread()
    if not usable or not hasattr(signal, "setitimer"):
        yield
        return

    active = [True]

    def interrupt(signum: int, frame: Any) -> None:
        if active[0]:
            raise UserTimeout(f"did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    # Repeats every second: an interrupt raised inside a gc callback or a destructor is swallowed by Python.
    signal.setitimer(signal.ITIMER_REAL, float(seconds), 1.0)
    try:
        yield
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class UserError(Exception):
    """The user's code raised or returned something unusable; ``message`` says which and what."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def describe_exception(err: BaseException) -> str:
    """The exception's last line, as a traceback would end: ``ValueError: shapes (2,3) and (4,5) ...``."""
    text = str(err).strip().splitlines()
    last = text[-1] if text else ""
    return f"{type(err).__name__}: {last}" if last else type(err).__name__
