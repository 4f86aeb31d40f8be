"""Records that describe the exercise bank: what a student implements, and how people get it wrong.

Each module of ``reference_impls`` defines ``EXERCISES`` and, under ``reference_impls.mistakes``,
``MISTAKES``; the package collects them. Grading, the practice skeletons and the harness's own
tests all read these records, so an exercise is described in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Exercise", "Mistake", "exercises_markdown"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: the registered target that grades it and what the student writes.

    ``name`` is also the name of the registered target (``bc.register(name, ...)``).
    ``functions`` are the names a student implements, looked up in ``module``
    (``("affine_forward", "affine_backward")``, or ``("TwoLayerNet",)`` for a model).
    """

    name: str
    title: str
    teaches: str
    points: int
    statement: str
    functions: tuple[str, ...]
    module: str
    style: str = "layer"  # "layer" | "loss" | "model"
    #: For a model: the keyword arguments of the student's class for given dims (graded in a worker,
    #: which cannot run the registration's ``model=`` lambda).
    init: Callable[[Mapping[str, int]], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Mistake:
    """A planted mistake, written the way people really get it wrong.

    ``replaces`` maps a function name of the exercise to its buggy version. ``diagnosis`` is the
    code the harness should give (``""`` when only detection is expected). A ``control`` is a
    harmless variant (a relu mask ``x >= 0``) that must *not* be flagged. ``step`` names the
    backward's local where the slip is (its last assignment is the planted line) and
    ``step_diagnosis`` the code that step should get, for mistakes the harness should localise.
    """

    exercise: str
    name: str
    description: str
    replaces: dict[str, Callable[..., Any]] = field(default_factory=dict)
    diagnosis: str = ""
    control: bool = False
    step: str = ""
    step_diagnosis: str = ""


def exercises_markdown(exercises: list[Exercise]) -> str:
    """The README's table of exercises: name, what it teaches, points, the functions to write."""
    lines = ["| exercise | teaches | points | you write |", "|---|---|---|---|"]
    for e in exercises:
        functions = ", ".join(f"`{f}`" for f in e.functions)
        lines.append(f"| `{e.name}` ({e.title}) | {e.teaches} | {e.points} | {functions} |")
    return "\n".join(lines)
