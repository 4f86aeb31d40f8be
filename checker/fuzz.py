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
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from random import Random
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import NoSuchExample, Unsatisfiable

from checker.cases import format_dims
from checker.registry import Target
from checker.strategies import dims_for

__all__ = [
    "DEFAULT_CASES",
    "EVERY_SHAPE",
    "TOO_SMALL",
    "edge_dims",
    "plan_dims",
    "shape_pattern",
    "shrink_dims",
    "with_choices",
]

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


def plan_dims(target: Target, cases: int | None, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """The dims to check, in order: edge cases first, then hypothesis draws, ``cases`` in all; each
    with a value for every hyper-parameter that has choices (:func:`with_choices`)."""
    budget = DEFAULT_CASES if cases is None else cases
    plan = edge_dims(target)[:budget]
    seen = {format_dims(d) for _, d in plan}
    for dims in drawn_dims(target, budget - len(plan) + 2, seed):
        if len(plan) >= budget:
            break
        if format_dims(dims) not in seen:
            seen.add(format_dims(dims))
            plan.append(("fuzz", dims))
    return with_choices(target, plan)


def with_choices(
    target: Target, plan: Sequence[tuple[str, dict[str, int]]]
) -> list[tuple[str, dict[str, Any]]]:
    """Each planned case given a value for every hyper-parameter with choices, every value in turn:
    each case takes the allowed combination with the most values not yet tried (then the least used),
    so that ``pad`` in (0, 1, 2) over six cases is tried twice each, at different sizes."""
    if not target.choices:
        return [(label, dict(dims)) for label, dims in plan]
    names = list(target.choices)
    combos = list(itertools.product(*(range(len(target.choices[n])) for n in names)))
    tried: set[tuple[str, int]] = set()
    uses: dict[tuple[int, ...], int] = {}
    out: list[tuple[str, dict[str, Any]]] = []
    for label, dims in plan:
        best: tuple[tuple[int, int, int], tuple[int, ...], dict[str, Any]] | None = None
        for order, combo in enumerate(combos):
            picked = {n: target.choices[n][i] for n, i in zip(names, combo, strict=True)}
            if not target.allows(dims | picked):
                continue
            fresh = sum((n, i) not in tried for n, i in zip(names, combo, strict=True))
            key = (-fresh, uses.get(combo, 0), order)
            if best is None or key < best[0]:
                best = (key, combo, picked)
        if best is None:
            continue
        _, combo, picked = best
        tried.update(zip(names, combo, strict=True))
        uses[combo] = uses.get(combo, 0) + 1
        out.append((label, dims | picked))
    return out


def shrink_dims(
    target: Target,
    failing: Mapping[str, int],
    still_fails: Callable[[dict[str, int]], bool],
    seed: int,
    budget: int = 40,
) -> dict[str, int]:
    """The smallest dims that still fail, by hypothesis' shrinker over sizes up to ``failing``'s.

    Hyper-parameters with choices keep ``failing``'s values. Falls back to ``failing`` itself when
    hypothesis finds nothing smaller within ``budget`` tries.
    """
    limits = {s: tuple(v for v in target.dims[s] if v <= failing[s]) or (failing[s],) for s in target.dims}
    fixed = {k: v for k, v in failing.items() if k not in target.dims}

    def condition(dims: dict[str, int]) -> bool:
        return _satisfies(target, dims | fixed) and still_fails(dict(dims) | fixed)

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
    if sum(smaller.values()) > sum(failing[s] for s in target.dims):
        return dict(failing)
    return smaller | fixed


#: The summary of a function that fails wherever a case can tell.
EVERY_SHAPE = "fails at every shape"
#: The end of a summary whose only passes are cases too small to be evidence.
TOO_SMALL = "(too small to tell)"


def shape_pattern(outcomes: Sequence[tuple[Mapping[str, Any], bool]], choices: Collection[str] = ()) -> str:
    """Words for which shapes fail, from (dims, failed) pairs: "fails only when N = 1", "fails whenever
    D != M", "fails exactly when pad = 0" (``choices``: the keys that are hyper-parameter values, not sizes).

    A pass at a one- or two-element case is no evidence (a wrong relu mask passes by luck of the sign):
    it is left out of the pattern, and when every other case fails the words say where those passes
    were: "passes only where D = 1 (too small to tell)".
    """

    def size(dims: Mapping[str, Any]) -> int:
        return math.prod(v for k, v in dims.items() if k not in choices)

    evidence = [(d, f) for d, f in outcomes if f or size(d) > 2]
    lucky = [d for d, f in outcomes if not f and size(d) <= 2]
    if not evidence:
        return ""
    failed = [f for _, f in evidence]
    if all(failed):
        return _passing_only_where(lucky, choices) if lucky else EVERY_SHAPE
    if not any(failed):
        return ""
    symbols = sorted({k for d, _ in evidence for k in d if k not in choices})
    candidates: list[tuple[str, Callable[[Mapping[str, Any]], bool]]] = []
    for s in symbols:
        candidates.append((f"fails only when {s} = 1", lambda d, s=s: d[s] == 1))
        candidates.append((f"fails whenever {s} > 1", lambda d, s=s: d[s] > 1))
    for a, b in itertools.combinations(symbols, 2):
        candidates.append((f"fails whenever {a} != {b}", lambda d, a=a, b=b: d[a] != d[b]))
        candidates.append((f"fails only when {a} = {b}", lambda d, a=a, b=b: d[a] == d[b]))
    candidates.extend(_exactly_when(evidence, choices))
    for text, predicate in candidates:
        if all(predicate(d) == f for d, f in evidence):
            return text
    bad = [format_dims(d) for d, f in evidence if f]
    good = [format_dims(d) for d, f in evidence if not f]
    return (
        f"fails at {'; '.join(bad[:3])}{' and more' if len(bad) > 3 else ''}; passes at {'; '.join(good[:2])}"
    )


def _exactly_when(
    evidence: Sequence[tuple[Mapping[str, Any], bool]], choices: Collection[str]
) -> list[tuple[str, Callable[[Mapping[str, Any]], bool]]]:
    """``fails exactly when pad = 0`` for each value seen in two cases or more (one case is no pattern)."""
    found: list[tuple[str, Callable[[Mapping[str, Any]], bool]]] = []
    keys = list(dict.fromkeys(k for d, _ in evidence for k in d))
    for key in sorted(keys, key=lambda k: (k not in choices, k)):
        values = [d[key] for d, _ in evidence if key in d]
        for value in list(dict.fromkeys(map(_hashable, values))):
            if key not in choices and value == 1:
                continue  # "fails only when N = 1" says it
            if sum(_hashable(v) == value for v in values) < 2:
                continue
            found.append(
                (f"fails exactly when {key} = {value}", lambda d, k=key, v=value: _hashable(d.get(k)) == v)
            )
    return found


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _passing_only_where(lucky: Sequence[Mapping[str, Any]], choices: Collection[str]) -> str:
    """Where the only passes were: "passes only where D = 1 (too small to tell)"."""
    symbols = [k for k in lucky[0] if k not in choices]
    ones = [s for s in symbols if all(d.get(s) == 1 for d in lucky)]
    if not ones:
        return f"passes only at one- or two-element shapes {TOO_SMALL}"
    if len(ones) == len(symbols):
        return f"passes only where every size is 1 {TOO_SMALL}"
    return f"passes only where {' = '.join(ones)} = 1 {TOO_SMALL}"
