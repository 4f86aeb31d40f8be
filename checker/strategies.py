"""Hypothesis strategies for dimensions and inputs, for users' own property tests. Pure.

from hypothesis import given
from checker.strategies import dims_for, cases_for

@given(cases_for(bc.get_target("affine")))
def test_my_affine(case): ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from checker.cases import Case, make_case
from checker.registry import Target

__all__ = ["cases_for", "dims_for", "sizes"]


def sizes(allowed: Sequence[int]) -> st.SearchStrategy[int]:
    """One dimension size from ``allowed`` (shrinks towards the smallest)."""
    values = sorted(set(int(v) for v in allowed))
    if not values:
        raise InvalidArgument("sizes(allowed=[]) needs at least one size")
    return st.sampled_from(values)


def dims_for(
    target_or_dims: Target | Mapping[str, Sequence[int]],
    *,
    constraint: Callable[[Mapping[str, int]], bool] | None = None,
    distinct: bool = False,
) -> st.SearchStrategy[dict[str, int]]:
    """A dict ``{symbol: size}`` for a target (its ``dims=`` limits and constraint) or for a dict of allowed sizes.

    ``distinct=True`` keeps sizes pairwise different where the allowed sets make that possible,
    so that transposes and wrong axes show in the shapes.
    """
    if isinstance(target_or_dims, Target):
        allowed = dict(target_or_dims.dims)
        if constraint is None and target_or_dims.constraint is not None:
            constraint = target_or_dims.allows
    elif isinstance(target_or_dims, Mapping):
        allowed = {str(k): tuple(v) for k, v in target_or_dims.items()}
    else:
        raise InvalidArgument(
            f"dims_for({target_or_dims!r}): pass a registered Target or a dict of allowed sizes"
        )
    strategy = st.fixed_dictionaries({sym: sizes(values) for sym, values in allowed.items()})
    if distinct:
        strategy = strategy.filter(
            lambda d: len(set(d.values())) == len(d) or len(d) > max(len(v) for v in allowed.values())
        )
    if constraint is not None:
        strategy = strategy.filter(lambda d: bool(constraint(d)))
    return strategy


def cases_for(target: Target, *, seed: int | None = None) -> st.SearchStrategy[Case]:
    """A whole :class:`~checker.cases.Case` (dims and inputs). Input values come from numpy's generator
    seeded by hypothesis (no NaN, no ties on a kink), so shrinking acts on the dims."""
    seeds = st.just(seed) if seed is not None else st.integers(0, 2**31 - 1)
    return st.builds(lambda dims, s: make_case(target, dims, s), dims_for(target), seeds)
