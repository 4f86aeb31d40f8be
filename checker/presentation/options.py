"""Option texts shared by the command line and pytest, read once; bad input is an :class:`OptionError`.

Each parser takes the text and the name to blame (``--tol``, ``--backprop-tol``, the ini setting
``backprop_tol``), so the message names what the user typed. The doors turn an ``OptionError`` into
their own usage error (argparse's, ``pytest.UsageError``); the texts stay the same.
"""

from __future__ import annotations

import os
from pathlib import Path

from checker.errors import OptionError, RegistrationError

__all__ = [
    "REPORT_FORMATS",
    "parse_dims",
    "parse_names",
    "parse_seconds",
    "parse_tolerance",
    "parse_whole_number",
    "report_format",
]

#: Report extensions and the format each writes; ``.htm`` is ``.html``.
REPORT_FORMATS = {".csv": "csv", ".json": "json", ".md": "markdown", ".html": "html", ".htm": "html"}
_LISTED = ".csv, .json, .md, .html"


def _subject(name: str, text: object, sep: str = " ") -> str:
    """``--tol 'x'``; just ``'x'`` when the door names the option itself (argparse: "argument --tol:")."""
    return f"{name}{sep}{text!r}" if name else repr(text)


def report_format(path: str | os.PathLike[str], name: str = "report") -> str:
    """The format a report path asks for (``"csv"``, ``"json"``, ``"markdown"``, ``"html"``), by extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in REPORT_FORMATS:
        raise OptionError(f"cannot write a {name} to {str(path)!r}: the extension must be one of {_LISTED}")
    return REPORT_FORMATS[suffix]


def parse_tolerance(text: str, name: str = "--tol") -> dict[str, float]:
    """``"rtol=1e-6,fd_rtol=1e-4"`` -> ``{"rtol": 1e-06, "fd_rtol": 0.0001}``, keys and values checked."""
    tol: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            tol[key.strip()] = float(value)
        except ValueError:
            raise OptionError(
                f"{_subject(name, text)}: expected KEY=NUMBER pairs like rtol=1e-6,fd_rtol=1e-4"
            ) from None
    from checker.registry import OracleTolerances

    try:
        OracleTolerances.coerce(tol)
    except RegistrationError as err:
        raise OptionError(f"{_subject(name, text)}: {err}") from None
    return tol


def parse_dims(text: str, name: str = "--dims") -> dict[str, int]:
    """``"N=1,D=3"`` -> ``{"N": 1, "D": 3}``."""
    dims: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip().isdigit() or int(value) < 1:
            raise OptionError(f"{_subject(name, text)}: expected SYMBOL=SIZE pairs like N=1,D=3 (sizes >= 1)")
        dims[key.strip()] = int(value)
    if not dims:
        raise OptionError(f"{_subject(name, text)}: expected SYMBOL=SIZE pairs like N=1,D=3")
    return dims


def parse_names(text: str, name: str, known: tuple[str, ...]) -> list[str]:
    """``"fd,torch"`` -> ``["fd", "torch"]``, each one of ``known``."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise OptionError(f"{_subject(name, text)}: choose from {', '.join(known)} (comma-separated)")
    return names


def parse_whole_number(text: object, name: str, minimum: int | None = None) -> int:
    """A whole number (``--cases 6``, ``backprop_seed = 3``), at least ``minimum`` when given."""
    try:
        number = int(str(text).strip())
    except ValueError:
        raise OptionError(f"{_subject(name, text, '=')}: expected a whole number") from None
    if minimum is not None and number < minimum:
        raise OptionError(f"{_subject(name, number, '=')}: must be a whole number >= {minimum}")
    return number


def parse_seconds(text: str, name: str = "--timeout", example: str = "--timeout 60") -> float:
    """A finite number of seconds > 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise OptionError(f"{_subject(name, text)} must be a finite number of seconds > 0, e.g. {example}")
    return seconds
