"""Name the mistake in a gradient that failed its check.

``diagnose_gradient(actual, expected, context)`` compares the user's gradient ``G`` with the oracle's
``T`` and tries one small rule per code, cheap and specific first. A rule either explains *all* of the
mismatch and returns a :class:`Diagnosis`, or returns ``None``; when no rule explains it the code is
``""`` and the message is numpy.testing's summary. A rule never guesses.

Rule order, ``G`` with the wrong shape: nonfinite, keepdims, unreduced_broadcast (sum over axes),
transposed, the value rules on ``G`` reshaped (when only size-1 axes differ), unreduced_broadcast
(another reduction of dout), then the shapes alone (:func:`diagnose_shape`).
Rule order, ``G`` with the right shape: nonfinite, zero, transposed, mean_instead_of_sum (over the
broadcast axes, then over a model's batch), unreduced_broadcast (another reduction of dout),
sign_flipped / scaled, wrong_mask, the composite rules (a mistake made of two parts), partial.
The order is written once, as the rule tuples of ``engine.py``.

The package, one job per module; data flows one way (context <- agreement, wording <- rules <- engine):

- ``context``: the codes, :class:`Diagnosis`, :class:`GradientContext`, broadcast axes, output shapes, symbols;
- ``agreement``: when arrays or fitted factors agree within a tolerance;
- ``wording``: every message a rule gives (the phrasing lives there and only there);
- ``shape_rules``, ``value_rules``, ``mask_rules``: the rules, by family;
- ``engine``: the drivers and the rule order.
"""

from __future__ import annotations

from checker.diagnose.context import CODES, NO_DIAGNOSIS, Diagnosis, GradientContext, broadcast_axes
from checker.diagnose.engine import diagnose_gradient, diagnose_shape
from checker.diagnose.wording import scaled_message

__all__ = [
    "CODES",
    "NO_DIAGNOSIS",
    "Diagnosis",
    "GradientContext",
    "broadcast_axes",
    "diagnose_gradient",
    "diagnose_shape",
    "scaled_message",
]
