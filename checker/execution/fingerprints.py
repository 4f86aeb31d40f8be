"""Telling a written array from an untouched one: copies, or CRC-32 fingerprints of large arrays.

A leaf module: the execution room records which arrays user code changed; the runner reports it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Fingerprint", "changed_names", "fingerprint", "values_equal"]


def values_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN equal to NaN. Tries the plain comparison first: numpy's NaN-aware one copies
    both arrays (boolean indexing), which would double a large check's peak memory."""
    if np.array_equal(a, b):
        return True
    return a.dtype.kind in "fc" and np.array_equal(a, b, equal_nan=True)


class Fingerprint(NamedTuple):
    """Shape, dtype and CRC-32 of an array's bytes: tells a written array from an untouched one
    without keeping a copy (a cs231n conv cache holds an im2col matrix 9x the size of x)."""

    shape: tuple[int, ...]
    dtype: str
    crc: int


def fingerprint(array: np.ndarray) -> Fingerprint | np.ndarray:
    """The array's :class:`Fingerprint`, or a copy of it when its bytes cannot be read (object arrays)."""
    if array.dtype.hasobject:
        return array.copy()
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return Fingerprint(array.shape, array.dtype.str, zlib.crc32(data))


def _unchanged(old: np.ndarray | Fingerprint, new: Any) -> bool:
    if isinstance(old, Fingerprint):
        return isinstance(new, np.ndarray) and fingerprint(new) == old
    return isinstance(new, np.ndarray) and new.shape == old.shape and values_equal(new, old)


def changed_names(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """The names whose array in ``after`` differs from ``before`` (copies of the arrays, or their
    :func:`fingerprint`); names missing from ``after`` count as changed only if ``before`` has them."""
    return tuple(
        name
        for name, old in before.items()
        if isinstance(old, (np.ndarray, Fingerprint)) and not _unchanged(old, after.get(name))
    )
