"""backprop-check: verify hand-written backpropagation.

    import checker as bc
    bc.register("affine", forward=affine_forward, backward=affine_backward,
                inputs={"x": "N,D", "w": "D,M", "b": "M"})
    report = bc.check("affine")

The names below load on first use, so that importing ``checker`` (as the pytest plugin does on
every pytest run) costs nothing until the harness is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from checker.compare import EXACT, FINITE_DIFFERENCE, Tolerance
    from checker.diagnose import CODES
    from checker.errors import BackpropCheckError, OptionError, RegistrationError, SpecError, TargetNotFound
    from checker.registry import OracleTolerances, Target, get_target, register, variant
    from checker.report import read_frame
    from checker.results import COLUMNS, CheckResult, FunctionSummary, Report
    from checker.spec import const, labels, mask, positive, probability
    from checker.suite import check, run

__version__ = "0.1.0"

_SOURCES = {
    "checker.compare": ("EXACT", "FINITE_DIFFERENCE", "Tolerance"),
    "checker.diagnose": ("CODES",),
    "checker.errors": (
        "BackpropCheckError",
        "OptionError",
        "RegistrationError",
        "SpecError",
        "TargetNotFound",
    ),
    "checker.registry": ("OracleTolerances", "Target", "get_target", "register", "variant"),
    "checker.report": ("read_frame",),
    "checker.results": ("COLUMNS", "CheckResult", "FunctionSummary", "Report"),
    "checker.spec": ("const", "labels", "mask", "positive", "probability"),
    "checker.suite": ("check", "run"),
}
_WHERE = {name: module for module, names in _SOURCES.items() for name in names}
#: Names that hand out Reports: loading one loads the report module too, which gives every Report
#: its writers (``report.write``, notebook rendering, ``print``) without the record layer importing it.
_PRESENTED = frozenset({"Report", "check", "run", "read_frame"})

__all__ = [
    "CODES",
    "COLUMNS",
    "EXACT",
    "FINITE_DIFFERENCE",
    "BackpropCheckError",
    "CheckResult",
    "FunctionSummary",
    "OptionError",
    "OracleTolerances",
    "RegistrationError",
    "Report",
    "SpecError",
    "Target",
    "TargetNotFound",
    "Tolerance",
    "check",
    "const",
    "get_target",
    "labels",
    "mask",
    "positive",
    "probability",
    "read_frame",
    "register",
    "run",
    "variant",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'checker' has no attribute {name!r}")
    if name in _PRESENTED:
        importlib.import_module("checker.report")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
