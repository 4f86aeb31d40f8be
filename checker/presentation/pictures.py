"""Which failing rows are worth a picture: the heatmaps and the step curve a report draws per function.

Used by the HTML page, and by the pytest door to decide which evidence arrays travel to where the
report is written (the xdist controller included).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from checker.results import CheckResult

__all__ = ["PICTURES", "has_arrays", "picture_rows", "step_curve_of"]

#: Heatmaps drawn per failing function.
PICTURES = 3
_CHECK_RANK = {"grad_torch": 0, "forward_torch": 0, "shape": 1, "grad_autograd": 1, "grad_fd": 2}


def has_arrays(row: CheckResult) -> bool:
    return all(isinstance(row.evidence.get(k), np.ndarray) for k in ("actual", "expected"))


def _readability(row: CheckResult) -> tuple[bool, float]:
    # About 20 entries reads best: a 1x1 case shows nothing, a 4096-entry one shows no single value.
    size = max(row.evidence["actual"].size, row.evidence["expected"].size, 1)
    return (not row.diagnosis, abs(math.log(size / 20)))


def picture_rows(rows: Sequence[CheckResult], limit: int = PICTURES) -> list[CheckResult]:
    """Up to ``limit`` failing rows worth a heatmap (evidence with "actual" and "expected").

    One per (case, target), from the best oracle (torch, then autograd, then finite differences);
    the targets take turns, so a function with two wrong gradients shows both.
    """
    best: dict[tuple[int, str], CheckResult] = {}
    for r in rows:
        # A localize row's arrays are a step's, drawn in the "where" section (checker.presentation.where).
        if r.failed and has_arrays(r) and r.check != "localize":
            key = (r.case, r.target)
            rank = (_CHECK_RANK.get(r.check, 3), not r.diagnosis)
            if key not in best or rank < (_CHECK_RANK.get(best[key].check, 3), not best[key].diagnosis):
                best[key] = r
    by_target: dict[str, list[CheckResult]] = {}
    for r in sorted(best.values(), key=_readability):
        queue = by_target.setdefault(r.target, [])
        # A second picture of the same shapes would show the same thing again.
        if all((q.expected_shape, q.actual_shape) != (r.expected_shape, r.actual_shape) for q in queue):
            queue.append(r)
    queues = list(by_target.values())
    chosen: list[CheckResult] = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


def step_curve_of(rows: Sequence[CheckResult], case: int | None, target: str | None) -> CheckResult | None:
    """The first row with a finite-difference step curve (of ``case`` and ``target`` when given)."""
    for r in rows:
        if "step_curve" in r.evidence and (case is None or (r.case, r.target) == (case, target)):
            return r
    return None
