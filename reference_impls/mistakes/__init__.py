"""Planted mistakes, each labelled with the diagnosis the harness should give."""

from reference_impls.bank import Mistake
from reference_impls.mistakes import layers, losses, models, sequence

MISTAKES: list[Mistake] = [*layers.MISTAKES, *losses.MISTAKES, *sequence.MISTAKES, *models.MISTAKES]

__all__ = ["MISTAKES"]
