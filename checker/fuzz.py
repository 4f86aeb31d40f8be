"""Which dimension sizes to check: forced edge cases, hypothesis draws, shrinking, and the shape summary.

The plan for a target always starts with the cases that expose the classic shape bugs (distinct
sizes, the batch of one, equal dimensions, all ones, the largest sizes), then fills the budget
with hypothesis draws. A failure is shrunk with hypothesis to the smallest failing dims, and the
pattern of failing shapes is summarised in words ("fails only when N = 1").
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from random import Random

import numpy as np
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import NoSuchExample, Unsatisfiable

from checker.cases import format_dims
from checker.registry import Target
from checker.strategies import dims_for

__all__ = ["DEFAULT_CASES", "edge_dims", "plan_dims", "shape_pattern", "shrink_dims"]

#: Cases per function by default: the edge cases plus a hypothesis draw or two.
DEFAULT_CASES = 6
_QUIET = {"database": None, "deadline": None, "suppress_health_check": list(HealthCheck), "print_blob": False}


@contextlib.contextmanager
def _no_trace() -> Iterator[None]:
    """Keep hypothesis from writing ``.hypothesis/`` into the user's folder while we draw dims.

    ``database=None`` stops only the example database: hypothesis also caches the constants of
    local modules (and other tables) under its storage directory, ``./.hypothesis`` by default.
    Unless the user chose that folder (``HYPOTHESIS_STORAGE_DIRECTORY``), it points at a
    temporary folder for the duration of our call and then back, so the user's own hypothesis
    tests in the same process keep their storage.
    """
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    from hypothesis import configuration

    previous = vars(configuration).get("__hypothesis_home_directory")
    with tempfile.TemporaryDirectory(prefix="backprop-check-hypothesis-") as scratch:
        configuration.set_hypothesis_home_dir(scratch)
        try:
            yield
        finally:
            configuration.set_hypothesis_home_dir(previous)


def _satisfies(target: Target, dims: Mapping[str, int]) -> bool:
    return target.allows(dims)


def _nearest_valid(
    target: Target, wanted: Mapping[str, int], rng: np.random.Generator
) -> dict[str, int] | None:
    """``wanted`` moved onto allowed sizes, then repaired for the constraint by a short random search."""
    dims = {s: min(target.dims[s], key=lambda v: (abs(v - wanted.get(s, v)), v)) for s in target.dims}
    if _satisfies(target, dims):
        return dims
    symbols = list(target.dims)
    for _ in range(3000):
        trial = dict(dims)
        for s in rng.choice(symbols, size=min(len(symbols), int(rng.integers(1, 4))), replace=False):
            trial[s] = int(rng.choice(target.dims[s]))
        if _satisfies(target, trial):
            return trial
    return None


def _distinct(target: Target) -> dict[str, int]:
    used: set[int] = set()
    dims = {}
    for s in target.dims:
        choices = [v for v in target.dims[s] if v >= 2 and v not in used] or [
            v for v in target.dims[s] if v not in used
        ]
        value = choices[0] if choices else target.dims[s][0]
        dims[s] = value
        used.add(value)
    return dims


def edge_dims(target: Target) -> list[tuple[str, dict[str, int]]]:
    """The forced cases, labelled: distinct sizes, each symbol = 1, all equal, all ones, the largest."""
    rng = np.random.default_rng(0)
    wanted: list[tuple[str, dict[str, int]]] = [("baseline", _distinct(target))]
    base = wanted[0][1]
    symbols = [s for s in target.dims if len(target.dims[s]) > 1]
    if symbols:
        wanted.append((f"{symbols[0]}=1", base | {symbols[0]: 1}))
        equal = 3 if all(3 in target.dims[s] for s in symbols) else max(min(target.dims[s]) for s in symbols)
        wanted.append(("equal", base | {s: equal for s in symbols}))
        wanted.append(("ones", base | {s: 1 for s in symbols}))
        wanted.append(("largest", {s: max(target.dims[s]) for s in target.dims}))
        wanted.extend((f"{s}=1", base | {s: 1}) for s in symbols[1:])
    plan: list[tuple[str, dict[str, int]]] = []
    seen: set[str] = set()
    for label, dims in wanted:
        valid = _nearest_valid(target, dims, rng)
        if valid is not None and format_dims(valid) not in seen:
            seen.add(format_dims(valid))
            plan.append((label, valid))
    return plan


def drawn_dims(target: Target, count: int, seed: int) -> list[dict[str, int]]:
    """``count`` draws from :func:`checker.strategies.dims_for`, deterministic for ``seed``."""
    if count <= 0 or all(len(sizes) == 1 for sizes in target.dims.values()):
        return []  # every symbol pinned: the edge cases already hold the one possible case
    drawn: list[dict[str, int]] = []

    @hypothesis_seed(seed)
    @settings(max_examples=count * 3, phases=[Phase.generate], **_QUIET)
    @given(dims_for(target))
    def collect(dims: dict[str, int]) -> None:
        if len(drawn) < count * 3:
            drawn.append(dict(dims))

    try:
        with _no_trace():
            collect()
    except Unsatisfiable:
        return []
    unique: list[dict[str, int]] = []
    for dims in reversed(drawn):  # later draws are larger and more varied than the first ones
        if dims not in unique:
            unique.append(dims)
    return unique[:count]


def plan_dims(target: Target, cases: int | None, seed: int) -> list[tuple[str, dict[str, int]]]:
    """The dims to check, in order: edge cases first, then hypothesis draws, ``cases`` in all."""
    budget = DEFAULT_CASES if cases is None else cases
    plan = edge_dims(target)[:budget]
    seen = {format_dims(d) for _, d in plan}
    for dims in drawn_dims(target, budget - len(plan) + 2, seed):
        if len(plan) >= budget:
            break
        if format_dims(dims) not in seen:
            seen.add(format_dims(dims))
            plan.append(("fuzz", dims))
    return plan


def shrink_dims(
    target: Target,
    failing: Mapping[str, int],
    still_fails: Callable[[dict[str, int]], bool],
    seed: int,
    budget: int = 40,
) -> dict[str, int]:
    """The smallest dims that still fail, by hypothesis' shrinker over sizes up to ``failing``'s.

    Falls back to ``failing`` itself when hypothesis finds nothing smaller within ``budget`` tries.
    """
    limits = {s: tuple(v for v in target.dims[s] if v <= failing[s]) or (failing[s],) for s in target.dims}

    def condition(dims: dict[str, int]) -> bool:
        return _satisfies(target, dims) and still_fails(dict(dims))

    try:
        with _no_trace():
            found = find(
                dims_for(limits),
                condition,
                settings=settings(max_examples=budget, phases=[Phase.generate, Phase.shrink], **_QUIET),
                random=Random(seed),
            )
    except (NoSuchExample, Unsatisfiable):
        return dict(failing)
    smaller = dict(found)
    return smaller if sum(smaller.values()) <= sum(failing.values()) else dict(failing)


def shape_pattern(outcomes: Sequence[tuple[Mapping[str, int], bool]]) -> str:
    """Words for which shapes fail, from (dims, failed) pairs: "fails only when N = 1", "fails whenever D != M"."""
    # A pass at a one- or two-element case is no evidence: a wrong relu mask passes by luck of the sign.
    outcomes = [(d, f) for d, f in outcomes if f or math.prod(d.values()) > 2]
    if not outcomes:
        return ""
    failed = [f for _, f in outcomes]
    if all(failed):
        return "fails at every shape"
    if not any(failed):
        return ""
    symbols = sorted(set().union(*(d.keys() for d, _ in outcomes)))
    candidates: list[tuple[str, Callable[[Mapping[str, int]], bool]]] = []
    for s in symbols:
        candidates.append((f"fails only when {s} = 1", lambda d, s=s: d[s] == 1))
        candidates.append((f"fails whenever {s} > 1", lambda d, s=s: d[s] > 1))
    for a, b in itertools.combinations(symbols, 2):
        candidates.append((f"fails whenever {a} != {b}", lambda d, a=a, b=b: d[a] != d[b]))
        candidates.append((f"fails only when {a} = {b}", lambda d, a=a, b=b: d[a] == d[b]))
    for text, predicate in candidates:
        if all(predicate(d) == f for d, f in outcomes):
            return text
    bad = [format_dims(d) for d, f in outcomes if f]
    good = [format_dims(d) for d, f in outcomes if not f]
    return (
        f"fails at {'; '.join(bad[:3])}{' and more' if len(bad) > 3 else ''}; passes at {'; '.join(good[:2])}"
    )
