"""The account of a failing function in a pytest failure (an item's ``repr_failure``, the fixture's
``pytest.fail``): the headline alone on its first line, one block per failing (check, gradient,
diagnosis), where the backward goes wrong first, then the function's facts under the labels every
door uses (the "where" line among them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from checker.presentation.summary import function_facts, status_verb
from checker.presentation.words import gradient_name

if TYPE_CHECKING:
    from checker.results import CheckResult, FunctionSummary

__all__ = ["failure_text"]

_NOT_GRADIENTS = frozenset({"", "forward", "backward", "loss", "timeout"})
_MAX_GROUPS = 8
_MAX_DIMS = 4


def _where(record: CheckResult, function_names: frozenset[str]) -> str:
    """``gradient dw``, or ``in affine_forward`` for a row about a function rather than a gradient."""
    if record.target in _NOT_GRADIENTS or record.target in function_names:
        return f"in {record.target}" if record.target else ""
    return f"gradient {gradient_name(record.target)}"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines() or [""])


def failure_text(
    summary: FunctionSummary,
    records: Iterable[CheckResult],
    seed: int,
    function_names: frozenset[str] = frozenset(),
    extra: Sequence[tuple[str, str]] = (),
) -> str:
    """One failing function, for pytest. The first line stands alone (pytest's short summary and
    junit's message show only it). ``function_names``: the user's function names (rows about them
    are not gradients); ``extra``: more ``(label, text)`` facts, such as the pytest rerun command."""
    records = list(records)
    head = (
        f"{summary.function}: {summary.failed_cases} of {summary.cases} cases {status_verb(summary.status)}"
    )
    if summary.diagnoses:
        head += f"; diagnosis: {summary.diagnoses}"
    head += f" (seed {seed})"
    groups: dict[tuple[str, str, str], list[CheckResult]] = {}
    for record in records:
        if record.failed:
            groups.setdefault((record.check, record.target, record.diagnosis), []).append(record)
    # Where the backward goes wrong (localize) first: it says which line to fix; the checks after it
    # say what the returned gradients look like.
    ordered = sorted(groups.items(), key=lambda item: item[0][0] != "localize")
    lines = [head]
    for (check, _, diagnosis), rows in ordered[:_MAX_GROUPS]:
        first = rows[0]
        parts = [f"check {check}", _where(first, function_names)]
        if first.status == "error":
            parts.append("error")
        else:
            parts.append(f"diagnosis {diagnosis}" if diagnosis else "no diagnosis")
        lines.append("  " + ", ".join(p for p in parts if p) + ":")
        lines.append(_indent(first.message, "    "))
        dims = list(dict.fromkeys(f"{r.dims} ({r.case_label})" if r.case_label else r.dims for r in rows))
        more = f"; and {len(dims) - _MAX_DIMS} more" if len(dims) > _MAX_DIMS else ""
        lines.append(f"    failing dims: {'; '.join(dims[:_MAX_DIMS])}{more}")
    if len(groups) > _MAX_GROUPS:
        lines.append(
            f"  ... and {len(groups) - _MAX_GROUPS} more failing checks (write them with --backprop-report)"
        )
    facts = [(f.label, f.text) for f in function_facts(summary, records)] + list(extra)
    width = max((len(label) for label, _ in facts), default=0) + 1
    lines += [f"  {label + ':':<{width}} {text}" for label, text in facts]
    return "\n".join(lines)
