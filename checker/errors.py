"""Errors raised for *misuse* of the harness. A wrong gradient is never an exception: it is a record."""

from __future__ import annotations

__all__ = ["BackpropCheckError", "RegistrationError", "SpecError", "TargetNotFound"]


class BackpropCheckError(Exception):
    """Base class: a mistake in using backprop-check (not in the code being checked)."""


class RegistrationError(BackpropCheckError, ValueError):
    """``register(...)`` (or check/run) was called with arguments that cannot work."""


class SpecError(RegistrationError):
    """An input spec such as ``"N,D"`` or a ``dims=`` entry that cannot be understood."""


class TargetNotFound(BackpropCheckError, LookupError):
    """A name or module given to ``check``/``run`` that holds no registration."""
