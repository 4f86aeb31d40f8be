"""The record a localisation produces: the judged steps, the first wrong one, or why there is none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from checker.localize.match import StepVerdict

__all__ = ["LIMITS", "Localization", "first_wrong_among"]

#: Why a failing function gets no localisation (``Localization.limit``), in the order they are tested.
LIMITS = (
    "not_traceable",  # the forward does not run (or gives another L) under torch._numpy
    "backward_failed",  # the user's code raised (or ran too long) while its steps were traced
    "gradients_right",  # every returned gradient equals its exact gradient: nothing to locate
    "no_named_steps",  # the backward has no named local arrays (one expression)
    "no_match",  # no local of the backward is named after a forward value
    "all_steps_right",  # every matched step is right: the mistake is in an unmatched step or the return
    "unconfirmed",  # wrong steps, but none returned and nothing wrong computed from them (partial values)
)


@dataclass(frozen=True)
class Localization:
    """Where a backward goes wrong, for one function and one case.

    ``steps``: every backward step matched to a forward name, judged, in the backward's order.
    ``first_wrong``: the first wrong one after only right ones (``None`` when there is none, with
    ``limit`` one of :data:`LIMITS` and ``reason`` a sentence for the summary). ``gradients``: for each
    failing gradient (input or parameter name), the index in ``steps`` of the first wrong step among
    those it was computed from. ``unmatched``: the backward's locals that match no forward name.
    ``arrays``: for each diagnosed wrong step (its index in ``steps``), its value and the exact
    gradient it was judged against, for the report's picture of it.
    """

    function: str
    steps: tuple[StepVerdict, ...] = ()
    first_wrong: StepVerdict | None = None
    reason: str = ""
    limit: str = ""
    gradients: tuple[tuple[str, int], ...] = ()
    unmatched: tuple[str, ...] = ()
    seconds: float = 0.0
    arrays: tuple[tuple[int, np.ndarray, np.ndarray], ...] = field(default=(), compare=False, repr=False)

    @property
    def localized(self) -> bool:
        return self.first_wrong is not None

    @property
    def right(self) -> tuple[StepVerdict, ...]:
        """The right steps before the first wrong one."""
        if self.first_wrong is None:
            return tuple(s for s in self.steps if s.right)
        return self.steps[: self.steps.index(self.first_wrong)]

    def for_gradient(self, name: str) -> StepVerdict | None:
        """The first wrong step behind the failing gradient ``name`` (``None`` when not localised)."""
        for gradient, index in self.gradients:
            if gradient == name:
                return self.steps[index]
        return None

    def arrays_of(self, step: StepVerdict) -> tuple[np.ndarray, np.ndarray] | None:
        """``(value, exact gradient)`` of a diagnosed wrong step (``None`` for any other step)."""
        index = self.steps.index(step)
        return next(((value, exact) for i, value, exact in self.arrays if i == index), None)

    def right_before(self, step: StepVerdict) -> tuple[StepVerdict, ...]:
        """The right steps that ``step`` was computed from (all right steps before it when unknown)."""
        index = self.steps.index(step)
        if step.depends_on:
            return tuple(self.steps[i] for i in step.depends_on if self.steps[i].right)
        return tuple(s for s in self.steps[:index] if s.right)


def first_wrong_among(steps: Sequence[StepVerdict], indices: Sequence[int] | None = None) -> int | None:
    """Index of the first confirmed wrong step (in the backward's order) among ``indices`` (all when ``None``)."""
    chosen = range(len(steps)) if indices is None else sorted(set(indices))
    for i in chosen:
        if steps[i].confirmed:
            return i
    return None
