"""Random forwards made functions: every forward call of one case draws the same random numbers.

A dropout layer in training mode draws its mask inside the forward (``np.random.rand(*x.shape) < p``).
Finite differences, autograd and the repeated calls of the checks all call that forward again, and
each call must see the same mask, or the forward is not a function of its inputs. Before every call
numpy's global generator and Python's ``random`` are seeded with the case's seed (the caller's state
is restored afterwards), and a ``rng`` / ``random_state`` parameter that neither the inputs nor
``hyper=`` fill gets a fresh generator seeded the same way. A generator given in ``hyper=`` is
deep-copied for every call already (:meth:`checker.cases.Case.fresh_hyper`), so it starts from the
same state each time. Randomness the harness cannot reach (``np.random.default_rng()`` without a
seed, a generator kept on an object) is found by calling the forward twice: :func:`differing`.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["RANDOM_PARAMETERS", "differing", "random_arguments", "same_draws", "seeded", "unrepeatable"]

#: Parameters a forward may take its randomness from, and how the harness fills them.
RANDOM_PARAMETERS: dict[str, Callable[[int], Any]] = {
    "rng": lambda seed: np.random.default_rng(seed),
    "random_state": lambda seed: np.random.RandomState(seed % 2**32),
}


@contextmanager
def same_draws(seed: int) -> Iterator[None]:
    """numpy's global generator and Python's ``random`` seeded with ``seed`` for the body, then put back."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def random_arguments(fn: Callable[..., Any], given: Collection[str], seed: int) -> dict[str, Any]:
    """Fresh generators for ``fn``'s ``rng`` / ``random_state`` parameters that ``given`` does not fill."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {
        name: make(seed)
        for name, make in RANDOM_PARAMETERS.items()
        if name in parameters and name not in given
    }


def seeded(fn: Callable[..., Any], seed: int, given: Collection[str]) -> Callable[..., Any]:
    """``fn`` called under :func:`same_draws` with :func:`random_arguments` added: the same draws every call.

    ``given``: the names the caller passes itself (the inputs and ``hyper=``). A first call that draws
    nothing from numpy's or Python's global generator tells that the later ones need no reset (finite
    differences call a forward hundreds of times; saving and seeding both generators costs ~40 us).
    """
    missing = random_arguments(fn, given, seed)
    draws: list[bool] = []  # empty until the first call has told

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        extra = {name: RANDOM_PARAMETERS[name](seed) for name in missing if name not in kwargs}
        if draws == [False]:
            return fn(*args, **kwargs, **extra)
        with same_draws(seed):
            if draws:
                return fn(*args, **kwargs, **extra)
            before = (np.random.get_state(), random.getstate())
            result = fn(*args, **kwargs, **extra)
            draws.append(_moved(before[0], np.random.get_state()) or before[1] != random.getstate())
            return result

    return call


def _moved(before: Any, after: Any) -> bool:
    """Whether numpy's legacy global generator moved between two ``get_state()`` tuples."""
    return bool(before[2] != after[2] or before[3] != after[3] or not np.array_equal(before[1], after[1]))


def differing(first: Sequence[Any], second: Sequence[Any]) -> float:
    """How far two calls' outputs are apart beyond round-off (0.0 when they agree).

    Round-off is allowed: numpy's SIMD loops may sum in another order for another memory alignment,
    so the same computation can differ in its last bits between two calls.
    """
    worst = 0.0
    for a, b in zip(first, second, strict=False):
        a = np.asarray(a, dtype=np.float64) if isinstance(a, (np.ndarray, float, np.floating)) else None
        b = np.asarray(b, dtype=np.float64) if isinstance(b, (np.ndarray, float, np.floating)) else None
        if a is None or b is None or a.shape != b.shape or a.size == 0:
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            gap = np.abs(a - b)
            scale = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 0.0
        gap = gap[np.isfinite(gap)]
        largest = float(gap.max()) if gap.size else 0.0
        if largest > 1e-5 * max(1.0, scale):
            worst = max(worst, largest)
    return worst


def unrepeatable(where: str, difference: float, what: str = "outputs") -> str:
    """The message of a forward that still differs between two calls on the same inputs."""
    return (
        f"{where} gives different {what} on two calls with the same inputs (max difference {difference:.3g}), "
        "even with numpy's global generator and Python's random reset to the same state before each call: "
        "it draws from a generator the harness cannot reset (np.random.default_rng() without a seed, a "
        "generator kept on an object or in a module). Take the generator as a parameter named rng (the "
        "harness passes a fresh, seeded one to every call), or the mask as an input (bc.mask); until "
        "then no gradient can be judged against it"
    )
