"""A :class:`Case`: one set of dimension sizes, the inputs drawn for it, and its seed.

Randomness comes only from ``np.random.default_rng(seed)``. Values are continuous draws, so ties
(two equal entries of a max-pool window) and exact zeros (a relu kink) have probability zero;
the finite-difference oracle still guards against inputs within a step of a kink.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from checker.errors import RegistrationError
from checker.registry import Target
from checker.spec import InputSpec

__all__ = [
    "CASE_COPIES",
    "MEMORY_FRACTION",
    "Case",
    "available_memory",
    "case_seed",
    "check_case_memory",
    "draw_input",
    "format_dims",
    "make_case",
]

#: A case holds its inputs about this many times over at its peak (the inputs, the gradients the
#: user returns, each oracle's, the copies that catch in-place mutation, the finite-difference
#: perturbations). Measured as the growth of peak RSS over one case of an affine layer with a torch
#: reference: 7.8x the inputs' bytes at N = D = M = 1500, 7.3x at 3000.
CASE_COPIES = 8
#: A case whose estimated peak (inputs x CASE_COPIES) exceeds this fraction of the memory available
#: when it is drawn is refused with a usage error instead of dying in a MemoryError (or swapping).
MEMORY_FRACTION = 0.75
#: Below this estimated peak no memory is looked up at all: every small case skips the check.
_ALWAYS_FITS = 256 * 2**20


@dataclass
class Case:
    """Inputs for one check of one target.

    ``arrays``: input name -> array, float64 (labels: int64). ``label`` says why the case exists
    (``baseline``, ``N=1``, ``D=M``, ``fuzz``, ``shrunk``).
    """

    index: int
    dims: dict[str, int]
    seed: int
    arrays: dict[str, np.ndarray]
    hyper: dict[str, Any] = field(default_factory=dict)
    label: str = "fuzz"

    @property
    def dims_text(self) -> str:
        return format_dims(self.dims)

    def fresh_hyper(self) -> dict[str, Any]:
        """A deep copy: user code may update ``bn_param`` in place."""
        return copy.deepcopy(self.hyper)


def format_dims(dims: Mapping[str, int]) -> str:
    """``{"N": 2, "D": 3}`` -> ``"N=2, D=3"``."""
    return ", ".join(f"{k}={v}" for k, v in dims.items())


def case_seed(seed: int, target_name: str, dims: Mapping[str, int]) -> int:
    """A stable per-case seed: the same run seed, target and dims always draw the same inputs."""
    key = f"{seed}|{target_name}|{format_dims(dict(sorted(dims.items())))}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


def draw_input(spec: InputSpec, dims: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
    """Draw one input of ``spec``'s kind and shape."""
    shape = spec.resolve(dims)
    if spec.kind == "labels":
        high = dims[spec.classes] if isinstance(spec.classes, str) else int(spec.classes or 1)
        return rng.integers(0, max(high, 1), size=shape, dtype=np.int64)
    if spec.kind == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if spec.kind == "probability":
        return rng.uniform(0.05, 0.95, size=shape)
    if spec.kind == "mask":
        return (rng.random(size=shape) < spec.keep).astype(np.float64) / spec.keep
    return rng.standard_normal(size=shape)


def available_memory() -> int | None:
    """Bytes of memory available now: ``MemAvailable`` of /proc/meminfo (Linux), else the free
    physical pages of ``os.sysconf``; ``None`` when neither is known (then nothing is refused)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _bytes_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_case_memory(target: Target, dims: Mapping[str, int], available: int | None = None) -> None:
    """Refuse ``dims`` before any array is made when the case would not fit in memory.

    Every input is 8 bytes an element (float64, int64 labels); the case's peak is estimated as
    :data:`CASE_COPIES` times its inputs and must stay within :data:`MEMORY_FRACTION` of
    ``available`` (default: :func:`available_memory`). Raises :class:`RegistrationError` naming the
    largest input, its shape at these dims, the bytes, and the fix.
    """
    sizes = {name: spec.resolve(dims) for name, spec in target.inputs.items()}
    nbytes = {name: 8 * math.prod(shape) for name, shape in sizes.items()}
    total = sum(nbytes.values())
    peak = CASE_COPIES * total
    if peak <= _ALWAYS_FITS:
        return
    available = available_memory() if available is None else available
    if available is None or peak <= MEMORY_FRACTION * available:
        return
    largest = max(nbytes, key=nbytes.__getitem__)
    others = f" ({_bytes_text(total)} for all {len(nbytes)} inputs)" if total > 1.05 * nbytes[largest] else ""
    raise RegistrationError(
        f"{target.name}: dims {format_dims(dims)} are too large for this machine: input {largest!r} has "
        f"shape {sizes[largest]}, {_bytes_text(nbytes[largest])} as float64{others}; a case holds its inputs "
        f"about {CASE_COPIES} times over ({_bytes_text(peak)}) and {_bytes_text(available)} of memory is "
        "available. Check smaller sizes: shape mistakes show at any size, so dims= in register() (or "
        "--dims on the command line) with sizes in the tens is enough"
    )


def make_case(
    target: Target, dims: Mapping[str, int], seed: int, index: int = 0, label: str = "fuzz"
) -> Case:
    """Draw every input of ``target`` for ``dims`` (refused first when they would not fit in memory)."""
    dims = {k: int(dims[k]) for k in target.dims}
    check_case_memory(target, dims)
    per_case = case_seed(seed, target.name, dims)
    rng = np.random.default_rng(per_case)
    arrays = {name: draw_input(spec, dims, rng) for name, spec in target.inputs.items()}
    return Case(
        index=index, dims=dims, seed=per_case, arrays=arrays, hyper=target.hyper_for(dims), label=label
    )
