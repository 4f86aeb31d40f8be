"""The forward lint as rows: a warning per broadcast trap, and gradients not blamed on the backward.

When the forward pairs every entry of two operands by broadcasting (``y_pred (5,)`` against ``y (5, 1)``
into ``(5, 5)``, :mod:`checker.oracles.broadcast_lint`), the oracles differentiate that computation,
and a backward written for the computation meant disagrees with them. Its rows still fail, but no
backward code (``scaled``, ``wrong_mask``...) may explain them: the mistake is the forward's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from checker.oracles.broadcast_lint import Broadcast
from checker.results import CheckResult

__all__ = ["CODE", "VALUE_CHECKS", "lint_rows", "not_the_backward"]

#: The diagnosis of a lint row.
CODE = "forward_broadcast"
#: The checks that compare a gradient's values with an oracle of the forward.
VALUE_CHECKS = ("grad_fd", "grad_torch", "grad_autograd", "grad_reference")


def lint_rows(broadcasts: Sequence[Broadcast], label: str) -> list[CheckResult]:
    """One ``warn`` row on the forward per operation that broadcast two operands into every pair."""
    return [
        CheckResult(
            "forward_lint",
            label,
            "warn",
            found.message(),
            diagnosis=CODE,
            expected_shape=str(found.shapes[0]),
            actual_shape=str(found.result),
            oracle="torch_numpy(trace)",
        )
        for found in broadcasts
    ]


def not_the_backward(rows: Sequence[CheckResult], broadcasts: Sequence[Broadcast]) -> list[CheckResult]:
    """``rows`` with each failing comparison of a gradient's values told it is the forward's doing."""
    if not broadcasts:
        return list(rows)
    first = broadcasts[0]
    (a, b), (na, nb) = first.shapes, first.names
    pair = f"{na or 'an array'} {a} with {nb or 'one of shape'} {b}"
    out = []
    for row in rows:
        if row.status != "fail" or row.check not in VALUE_CHECKS:
            out.append(row)
            continue
        message = (
            f"d{row.target} differs from {row.oracle} (max abs err {row.max_abs_err:.3g}); no backward mistake "
            f"is named: the forward broadcasts {pair} into {first.result} (the forward_lint row), so the "
            "gradient it is compared with is that computation's"
        )
        evidence = {k: v for k, v in row.evidence.items() if k != "diagnosis"}
        out.append(replace(row, diagnosis="", message=message, evidence=evidence))
    return out
