"""backprop-check: verify hand-written backpropagation.

import checker as bc
bc.register("affine", forward=affine_forward, backward=affine_backward,
            inputs={"x": "N,D", "w": "D,M", "b": "M"})
report = bc.check("affine")
"""

from checker.compare import EXACT, FINITE_DIFFERENCE, Tolerance
from checker.errors import BackpropCheckError, RegistrationError, SpecError, TargetNotFound
from checker.registry import Target, Tolerances, get_target, register, variant
from checker.results import COLUMNS, CheckResult, FunctionSummary, Report
from checker.spec import const, labels, mask, positive, probability
from checker.suite import check, run

__all__ = [
    "COLUMNS",
    "EXACT",
    "FINITE_DIFFERENCE",
    "BackpropCheckError",
    "CheckResult",
    "FunctionSummary",
    "RegistrationError",
    "Report",
    "SpecError",
    "Target",
    "TargetNotFound",
    "Tolerance",
    "Tolerances",
    "check",
    "const",
    "get_target",
    "labels",
    "mask",
    "positive",
    "probability",
    "register",
    "run",
    "variant",
]
__version__ = "0.1.0"
