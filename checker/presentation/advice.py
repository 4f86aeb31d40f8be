"""What to do when user code raised at some shapes only: keep those shapes out, or fix the code.

A 2x2 max-pool that reshapes ``(H // 2, 2)`` raises at odd ``H``; a convolution raises where its
stride does not divide. When every failing case of a function is one where the user's code *raised*
and other cases passed, the shapes are the likely cause: the advice names the failing and passing
dims and, when one simple rule separates them, the ``constraint=`` (and ``dims=``) that says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checker.results import CheckResult, FunctionSummary

__all__ = ["separating_rule", "shape_advice"]

_SHOWN = 3
#: The target of the row the runner writes when a case did not finish in time (a hang, not a raise).
TIMEOUT = "timeout"


def _parse_dims(text: str) -> dict[str, int]:
    """``"N=1, D=3"`` -> ``{"N": 1, "D": 3}`` (the dims column of a record)."""
    dims: dict[str, int] = {}
    for part in text.split(","):
        name, sep, size = part.strip().partition("=")
        if sep and size.strip().isdigit():
            dims[name.strip()] = int(size)
    return dims


Rule = tuple[str, tuple[str, ...], Callable[[Mapping[str, int]], bool]]


def _rules(symbols: Sequence[str], passing: Sequence[Mapping[str, int]]) -> Iterable[Rule]:
    """Candidate rules, simplest first: (Python text, symbols it uses, predicate)."""
    for s in symbols:
        for k in (2, 3, 4):
            yield f'd["{s}"] % {k} == 0', (s,), lambda d, s=s, k=k: d[s] % k == 0
    for s in symbols:
        low = min(d[s] for d in passing)
        if low > 1:
            yield f'd["{s}"] >= {low}', (s,), lambda d, s=s, low=low: d[s] >= low
        high = max(d[s] for d in passing)
        yield f'd["{s}"] <= {high}', (s,), lambda d, s=s, high=high: d[s] <= high
    for a, b in itertools.permutations(symbols, 2):
        yield f'd["{a}"] % d["{b}"] == 0', (a, b), lambda d, a=a, b=b: d[a] % d[b] == 0
        yield f'd["{a}"] >= d["{b}"]', (a, b), lambda d, a=a, b=b: d[a] >= d[b]


def separating_rule(
    failing: Sequence[Mapping[str, int]], passing: Sequence[Mapping[str, int]]
) -> tuple[str, tuple[str, ...]] | None:
    """The simplest rule true at every passing dims and false at every failing one, as Python text
    over ``d`` with the symbols it uses; None when no candidate separates them."""
    if not failing or not passing:
        return None
    symbols = [s for s in passing[0] if all(s in d for d in (*failing, *passing))]
    for text, used, holds in _rules(symbols, passing):
        if all(holds(d) for d in passing) and not any(holds(d) for d in failing):
            return text, used
    return None


def _listed(dims: Sequence[Mapping[str, int]], symbols: Sequence[str]) -> str:
    """``H = 1, 3, 5`` for one symbol; ``N=1, C=2; N=3, C=3`` for several (at most a few, then "and more")."""
    if len(symbols) == 1:
        values = sorted({d[symbols[0]] for d in dims})
        more = ", and more" if len(values) > 2 * _SHOWN else ""
        return f"{symbols[0]} = {', '.join(map(str, values[: 2 * _SHOWN]))}{more}"
    texts = list(dict.fromkeys(", ".join(f"{s}={d[s]}" for s in symbols) for d in dims))
    more = " and more" if len(texts) > _SHOWN else ""
    return "; ".join(texts[:_SHOWN]) + more


def shape_advice(summary: FunctionSummary, records: Iterable[CheckResult]) -> str:
    """The advice for a function whose code raised at some shapes and passed at others, else ``""``."""
    if summary.status == "pass":
        return ""
    by_case: dict[int, list[CheckResult]] = {}
    for r in records:
        if r.function in ("", summary.function):
            by_case.setdefault(r.case, []).append(r)
    failing: list[dict[str, int]] = []
    passing: list[dict[str, int]] = []
    for rows in by_case.values():
        failed = [r for r in rows if r.failed]
        if any(r.status != "error" or r.target == TIMEOUT for r in failed):
            return ""  # a wrong value or a hang somewhere: the shapes are not the whole story
        (failing if failed else passing).append(_parse_dims(rows[0].dims))
    if not failing or not passing or not all(failing + passing):
        return ""
    found = separating_rule(failing, passing)
    head = "your code raised at some shapes only"
    if found is None:
        symbols = list(failing[0])
        return (
            f"{head} (fails at {_listed(failing, symbols)}; passes at {_listed(passing, symbols)}): if it is "
            "not meant for the failing shapes, keep them out with constraint=lambda d: ... (true where it "
            "should work) or limit the sizes with dims=; if it is, fix it at the failing dims"
        )
    rule, used = found
    sizes = ", ".join(f'"{s}": {tuple(sorted({d[s] for d in passing}))}' for s in used)
    return (
        f"{head} (fails at {_listed(failing, used)}; passes at {_listed(passing, used)}): if it is not "
        f"meant for the failing shapes, keep them out with constraint=, e.g. constraint=lambda d: {rule} "
        f"(true at every passing case, false at every failing one), or dims={{{sizes}}}; if it is, fix it "
        "at the failing dims"
    )
