"""Planted mistakes, each labelled with the diagnosis the harness should give."""

from reference_impls.bank import Mistake
from reference_impls.mistakes import layers, losses, models, sequence, staged_nets, staged_norms

MISTAKES: list[Mistake] = [
    *layers.MISTAKES,
    *losses.MISTAKES,
    *sequence.MISTAKES,
    *models.MISTAKES,
    *staged_norms.MISTAKES,
    *staged_nets.MISTAKES,
]

__all__ = ["MISTAKES"]
