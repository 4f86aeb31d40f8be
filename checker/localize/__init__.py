"""Locate the first wrong step of a hand-written backward pass.

``localize(target, inputs, hyper, douts, ...)`` runs the user's forward under torch._numpy to get the
exact gradient of every named intermediate (``mu``, ``xhat``, ``scores`` ...), runs the backward
traced to get each of its local arrays (``dmu``, ``dxhat``, ``dscores`` ...), matches them by name
and returns a :class:`Localization`: the right steps, the first wrong one (its line, its statement,
its diagnosis), or the reason there is none. ``localization_rows`` turns it into report rows.
Each wrong step is named by the diagnosis engine (:mod:`checker.diagnose`).
"""

from checker.localize.localization import LIMITS, Localization
from checker.localize.locate import localize
from checker.localize.match import StepVerdict
from checker.localize.rows import localization_message, localization_rows

__all__ = [
    "LIMITS",
    "Localization",
    "StepVerdict",
    "localization_message",
    "localization_rows",
    "localize",
]
