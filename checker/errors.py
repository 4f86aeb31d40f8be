"""Errors raised for *misuse* of the harness. A wrong gradient is never an exception: it is a record.

Each class is named for what was misused, and all derive from :class:`BackpropCheckError`, so
``except bc.BackpropCheckError`` catches every misuse and nothing else.
"""

from __future__ import annotations

__all__ = ["BackpropCheckError", "OptionError", "RegistrationError", "SpecError", "TargetNotFound"]


class BackpropCheckError(Exception):
    """Base class: a mistake in using backprop-check (not in the code being checked)."""


class RegistrationError(BackpropCheckError, ValueError):
    """``register(...)`` was called with arguments that cannot work."""


class SpecError(RegistrationError):
    """An input spec such as ``"N,D"`` or a ``dims=`` entry that cannot be understood."""


class OptionError(BackpropCheckError, ValueError):
    """An option of a run that cannot work: ``check``/``run`` keywords (``mode=``, ``oracles=``,
    ``cases=``, ``timeout=``, ``dims=``, ``tol=``, ``seed=``), a report path, or the same option on
    the command line or in pytest."""


class TargetNotFound(BackpropCheckError, LookupError):
    """A name or module given to ``check``/``run`` that holds no registration."""
