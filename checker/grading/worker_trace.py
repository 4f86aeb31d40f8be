"""The sandbox side of localisation: run a student's backward traced and describe its steps as data.

Loaded by path by ``worker.py`` (inside the sandbox, next to it; outside, from ``checker/localize``).
It runs the localize engine's own step recorder (:mod:`checker.localize.steps`, with its tracer and
source reader: three modules that import only the standard library and numpy), loaded by path under
private names, so that the worker still imports nothing of ``checker``'s package.

Nothing here judges: the grader reads each step's name, line, value and the indices of the steps it
was computed from as untrusted data, checks them, and judges them itself against the reference
solution. Everything is bounded: line events (the tracer's budget), steps, entries sent, names.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_ENTRIES", "MAX_RETURNS", "MAX_STEPS", "TRACE_BUDGET", "describe_steps", "trace"]

#: Line events one traced backward may take (the engine's default: a naive loop over a big case stops).
TRACE_BUDGET = 200_000
#: Steps sent (the first ones, in the backward's order) and returns described.
MAX_STEPS = 200
MAX_RETURNS = 64
#: Array entries sent over all steps (float64: 16 MB); steps past it are left out.
MAX_ENTRIES = 2_000_000
_MAX_NAME = 100
_MAX_READS = 64
_ENGINE = ("source", "tracer", "steps")
_loaded: dict[str, Any] = {}


def _engine_folder() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    inside = os.path.join(here, "localize")  # the sandbox binds the three files there
    return inside if os.path.isdir(inside) else os.path.join(os.path.dirname(here), "localize")


def _steps_module() -> Any:
    """The engine's ``steps`` module, loaded by path once. Its imports of ``checker.localize.source``
    and ``.tracer`` are served from ``sys.modules`` while it loads, then the names are removed again."""
    if "steps" in _loaded:
        return _loaded["steps"]
    folder = _engine_folder()
    names = [f"checker.localize.{part}" for part in _ENGINE]
    try:
        for part, name in zip(_ENGINE, names, strict=True):
            spec = importlib.util.spec_from_file_location(name, os.path.join(folder, f"{part}.py"))
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            _loaded[part] = module
    finally:
        for name in names:
            sys.modules.pop(name, None)
    return _loaded["steps"]


def trace(call: Callable[[], Any], files: list[str]) -> Any:
    """Run ``call()`` (the student's backward, or a loss whose second half is its backward) with the
    frames of ``files`` watched; returns the engine's ``BackwardRun``. What the call raises propagates
    (a BaseException past the line budget)."""
    return _steps_module().run_backward(call, files, TRACE_BUDGET)


def _name(text: Any) -> str:
    return text[:_MAX_NAME] if isinstance(text, str) else ""


def describe_steps(
    run: Any,
    root: str,
    gradients: Any,
    blobs: list[bytes],
    describe_value: Callable[[object, list[bytes], int], dict[str, Any]],
    max_bytes: int,
) -> dict[str, Any]:
    """The steps of a traced run as JSON and blobs: per step its name, key, file (relative to
    ``root``), line, function, frame, order, flags, the index of its object, and ``depends``, the indices
    of the earlier steps of its frame its statements read. ``returns``: per watched call, the arrays
    it returned (their objects, and the names each one's expression reads); ``gradients``: the objects of the
    returned gradients (a dict's entries mark its steps ``in_gradients``)."""
    objects: dict[int, int] = {}

    def object_index(obj_id: int) -> int:
        return objects.setdefault(obj_id, len(objects))

    gradient_dict = id(gradients) if isinstance(gradients, dict) else 0
    values = (
        list(gradients.values())
        if isinstance(gradients, dict)
        else list(gradients)
        if isinstance(gradients, (tuple, list))
        else [gradients]
    )
    steps: list[dict[str, Any]] = []
    entries = 0
    kept = []
    for step in run.steps:
        if len(kept) >= MAX_STEPS or entries + step.value.size > MAX_ENTRIES:
            break
        file = os.path.relpath(step.file, root) if step.file.startswith(root + os.sep) else ""
        if not file:
            continue
        entries += step.value.size
        kept.append(step)
    for i, step in enumerate(kept):
        depends = [
            j
            for j, other in enumerate(kept)
            if j != i
            and other.frame == step.frame
            and other.order < step.order
            and other.name.split("[")[0] in step.reads
        ]
        steps.append(
            {
                "name": _name(step.name),
                "key": _name(step.key),
                "file": _name(os.path.relpath(step.file, root)),
                "line": int(step.line),
                "function": _name(step.function),
                "frame": int(step.frame),
                "order": int(step.order),
                "object": object_index(step.object_id),
                "in_gradients": bool(gradient_dict and step.container == gradient_dict),
                "given": bool(step.given),
                "reassigned_argument": bool(step.reassigned_argument),
                "depends": depends[:_MAX_READS],
                "value": describe_value(step.value, blobs, max_bytes),
            }
        )
    returns = [
        {
            "frame": int(r.frame),
            "elements": [
                {"object": object_index(oid), "reads": sorted(reads)[:_MAX_READS]}
                for oid, reads in r.elements[:_MAX_READS]
            ],
        }
        for r in run.returns[:MAX_RETURNS]
    ]
    returned = [object_index(id(v)) for v in values[:_MAX_READS]]
    return {"steps": steps, "returns": returns, "gradients": returned, "left_out": len(run.steps) - len(kept)}
