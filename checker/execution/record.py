"""What one run of the user's code produced, before any judging: :class:`Execution`.

Made in this process (:mod:`checker.execution.in_process`) or from a sandboxed worker's answers
(:mod:`checker.grading.executions`); the runner judges both the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from checker.compare import FLOAT64_EPS
from checker.execution.user_code import UserError

__all__ = ["Execution", "MutationEvidence", "Refused"]


@dataclass(frozen=True)
class MutationEvidence:
    """Which arrays handed to one call of user code it changed (see
    :func:`checker.execution.fingerprints.changed_names`). ``where`` names the call in the report
    (``forward``, ``backward``, ``call``); ``by`` names who wrote (``affine_forward``, ``your code``)."""

    where: str
    by: str
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    """A value the user's code returned that cannot be used as an array (a list, None, a subclass of
    ndarray from a sandboxed worker); ``message(name)`` says what it was."""

    why: str

    def message(self, name: str) -> str:
        return f"{name} {self.why}"


#: The factor of the upstream gradients of :attr:`Execution.rescaled`: not a power of two, so every
#: rounding of the backward falls elsewhere, and close to 1, so a backward that is not linear in them
#: (a mistake) moves by a small fraction of its error.
RESCALE = 1.0 + 2.0**-13


@dataclass
class Execution:
    """Everything the checks need from one run of the user's code on one case.

    ``param_values``: the point at which gradients are taken (the inputs, or a model's parameters);
    ``differentiable``: the names whose gradients the user returns; ``raw_grads`` / ``raw_grads_again``:
    what the backward returned on the first and the second call (a :class:`UserError` when the second
    call raised; None when it was not made); ``outputs``: a layer's outputs (arrays, or
    :class:`Refused`); ``value``: L (``sum(out * dout)`` for a layer, the loss otherwise);
    ``objective``: L as a function of the values, for finite differences and autograd (None when the
    code cannot be called here: a sandboxed submission); ``eps``: the machine epsilon of the least
    precise float the code computed with (outputs, cache, gradients).
    """

    differentiable: list[str]
    param_values: dict[str, np.ndarray]
    raw_grads: Any
    raw_grads_again: Any
    where: str
    objective: Callable[[Mapping[str, Any]], Any] | None = None
    outputs: tuple[Any, ...] = ()
    douts: tuple[np.ndarray, ...] = ()
    value: float = float("nan")
    mutations: list[MutationEvidence] = field(default_factory=list)
    model_params: dict[str, np.ndarray] | None = None
    eps: float = FLOAT64_EPS
    #: reduced-precision code only: other exact gradients of the same computation, by who made them (the
    #: user's forward run as its float64 ``shadow``; the torch reference run in the user's precision,
    #: ``reference_low``): how far they are apart is what that precision can resolve at this input
    witnesses: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: a layer's backward called once more with every upstream gradient times a factor (``RESCALE`` by
    #: default; None when it cannot be called here): it is linear in them, so its answer divided by
    #: ``RESCALE`` differs from the first only by the backward's own round-off at this input (reduced
    #: precision only); with 1.0, the first answer again
    rescaled: Callable[..., Any] | None = None
    #: a forward that returned outputs the checks cannot use (wrong count, refused values): the message
    forward_problem: str = ""
    #: what the user's backward calls its upstream gradients (``dnext_h``, ``dnext_c``), for messages
    dout_names: tuple[str, ...] = ()
    #: a forward that gave two different results for the same inputs (its random draws escape the
    #: harness's reset): the message; then ``objective`` is None, nothing can be judged against it
    unrepeatable: str = ""
    #: the forward lint's findings (:class:`checker.oracles.broadcast_lint.Broadcast`), from the autograd trace
    broadcasts: tuple[Any, ...] = ()

    @property
    def second_call_failed(self) -> UserError | None:
        return self.raw_grads_again if isinstance(self.raw_grads_again, UserError) else None
