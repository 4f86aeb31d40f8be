"""The exercise bank: correct numpy layers with hand-written backward, their torch references,
and the planted mistakes people really make. Importing the package registers every exercise.

``EXERCISES`` lists every :class:`~reference_impls.bank.Exercise`, in bank order.
"""

from reference_impls import conv, layers, losses, models, sequence, staged
from reference_impls.bank import Exercise, Mistake

EXERCISES: list[Exercise] = [
    *layers.EXERCISES,
    *conv.EXERCISES,
    *losses.EXERCISES,
    *sequence.EXERCISES,
    *models.EXERCISES,
    *staged.EXERCISES,
]

__all__ = ["EXERCISES", "Exercise", "Mistake", "exercise"]


def exercise(name: str) -> Exercise:
    """The exercise called ``name`` (``KeyError`` listing the known names otherwise)."""
    for item in EXERCISES:
        if item.name == name:
            return item
    raise KeyError(f"no exercise {name!r}; known: {', '.join(e.name for e in EXERCISES)}")
