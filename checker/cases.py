"""A :class:`Case`: one set of dimension sizes, the inputs drawn for it, and its seed.

Randomness comes only from ``np.random.default_rng(seed)``. Values are continuous draws, so ties
(two equal entries of a max-pool window) and exact zeros (a relu kink) have probability zero;
the finite-difference oracle still guards against inputs within a step of a kink.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from checker.registry import Target
from checker.spec import InputSpec

__all__ = ["Case", "case_seed", "draw_input", "format_dims", "make_case"]


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


def make_case(
    target: Target, dims: Mapping[str, int], seed: int, index: int = 0, label: str = "fuzz"
) -> Case:
    """Draw every input of ``target`` for ``dims``."""
    dims = {k: int(dims[k]) for k in target.dims}
    per_case = case_seed(seed, target.name, dims)
    rng = np.random.default_rng(per_case)
    arrays = {name: draw_input(spec, dims, rng) for name, spec in target.inputs.items()}
    return Case(
        index=index, dims=dims, seed=per_case, arrays=arrays, hyper=target.hyper_for(dims), label=label
    )
