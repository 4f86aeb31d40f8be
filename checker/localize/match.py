"""Match the backward's steps to forward names and judge each against its exact gradient.

``dsqrtvar`` (or ``d_sqrtvar``, ``grad_sqrtvar``, ``sqrtvar_grad``, ``gsqrtvar``) is matched to the
forward's ``sqrtvar``; an entry of the dict the function returns as its gradients may also use the
name itself (``grads["W1"]``). Steps that match nothing (partial sums like ``dxmu1``) are left out,
never guessed. A matched step is *right* when its shape and values equal the exact gradient of one
of the name's bindings (see :mod:`~checker.localize.intermediates`) within the tolerance; otherwise
it is *wrong*, and the existing diagnosis rules (then the composite ones) say how, against the
binding of the same shape it is closest to (the last binding when no shape agrees). An argument the
backward reassigns (``dout = dout * mask; return dout``) may hold another value's gradient: it is
right when it equals the exact gradient of any binding of its shape.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from checker.compare import Tolerance, mismatch_mask
from checker.diagnose import Diagnosis, GradientContext, diagnose_gradient
from checker.localize.intermediates import Binding
from checker.localize.names import gradient_of
from checker.localize.steps import FrameReturn, Step

__all__ = ["Judged", "StepVerdict", "diagnose_step", "diagnose_verdicts", "judge_steps"]


@dataclass(frozen=True)
class StepVerdict:
    """One matched step of the backward, judged.

    ``depends_on``: indices (into :attr:`Judged.verdicts`) of the matched steps this one was computed
    from, directly or through unmatched ones; ``unchecked``: the unmatched locals its statement reads.
    """

    name: str
    forward_name: str
    file: str
    line: int
    source: str
    right: bool
    diagnosis: str = ""
    message: str = ""
    max_abs_err: float = float("nan")
    expected_shape: tuple[int, ...] = ()
    actual_shape: tuple[int, ...] = ()
    is_input: bool = False
    function: str = ""
    depends_on: tuple[int, ...] = ()
    unchecked: tuple[str, ...] = ()
    object_id: int = 0
    frame: int = 0
    returned: bool = False  # its value is one of the gradients the function returned
    confirmed: bool = False  # wrong, and returned or something wrong was computed from it

    @property
    def location(self) -> str:
        """``mylayers.py:123``."""
        return f"{Path(self.file).name}:{self.line}"


@dataclass(frozen=True)
class Judged:
    """The matched steps in the backward's order, and the names of the steps that matched nothing.

    ``evidence`` holds, per verdict, the step's value and the binding a wrong step is closest to
    (``None`` for a right one): what :func:`diagnose_verdicts` needs, for the steps that are shown.
    """

    verdicts: tuple[StepVerdict, ...]
    unmatched: tuple[str, ...]
    evidence: tuple[tuple[np.ndarray, Binding | None, frozenset[str]], ...] = field(
        default=(), compare=False, repr=False
    )


#: ``context_for(forward_name, binding, names its statement reads)``: what the diagnosis rules see.
ContextFor = Callable[[str, Binding, frozenset[str]], GradientContext]


def _forward_name(step: Step, names: Collection[str], gradient_dicts: Collection[int]) -> str | None:
    if step.container and step.container in gradient_dicts and step.key in names:
        return step.key
    return gradient_of(step.key, names)


def _equal(value: np.ndarray, other: np.ndarray) -> bool:
    """The same numbers, whatever the shape (a step returned reshaped is still the returned gradient)."""
    return value.size == other.size and value.size > 0 and np.array_equal(value.ravel(), other.ravel())


def _error(value: np.ndarray, expected: np.ndarray) -> float:
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.max(np.abs(value - expected))) if value.size else 0.0


def diagnose_step(value: np.ndarray, binding: Binding, context: GradientContext, tol: Tolerance) -> Diagnosis:
    """The diagnosis engine's rules (the composite ones, ``regularization`` and ``missing_path``,
    included) applied to a step's value against its exact gradient."""
    return diagnose_gradient(value, binding.gradient, context, tol)


def _judge(
    step: Step,
    forward_name: str,
    candidates: Sequence[Binding],
    tol: Tolerance,
    every_binding: Sequence[Binding] = (),
) -> tuple[StepVerdict, Binding | None]:
    """The verdict (no diagnosis yet) and, for a wrong step, the binding it is judged against."""
    value = step.value
    same = [b for b in candidates if b.gradient.shape == value.shape]
    if step.reassigned_argument:
        # ``dout = dout * mask; return dout``: a reused argument may hold another value's gradient.
        same += [
            b for b in every_binding if b.gradient.shape == value.shape and all(b is not s for s in same)
        ]
    base = dict(
        name=step.name,
        forward_name=forward_name,
        file=step.file,
        line=step.line,
        source=step.source,
        actual_shape=tuple(value.shape),
        function=step.function,
        object_id=step.object_id,
        frame=step.frame,
    )
    if same:
        errors = [_error(value, b.gradient) for b in same]
        for binding, error in zip(same, errors, strict=True):
            if not mismatch_mask(value, binding.gradient, tol).any():
                right = StepVerdict(
                    **base,
                    right=True,
                    max_abs_err=error,
                    expected_shape=tuple(binding.gradient.shape),
                    is_input=bool(binding.input),
                )
                return right, None
        closest = same[int(np.nanargmin([e if np.isfinite(e) else np.inf for e in errors]))]
    else:
        closest = candidates[-1]
    wrong = StepVerdict(
        **base,
        right=False,
        max_abs_err=_error(value, closest.gradient) if same else float("nan"),
        expected_shape=tuple(closest.gradient.shape),
        is_input=bool(closest.input),
    )
    return wrong, closest


def diagnose_verdicts(
    judged: Judged, indices: Collection[int], tol: Tolerance, context_for: ContextFor
) -> Judged:
    """``judged`` with the wrong steps at ``indices`` diagnosed (the others keep no diagnosis: each
    diagnosis tries every rule, and only the steps a report shows need one)."""
    verdicts = list(judged.verdicts)
    for index in set(indices):
        value, closest, reads = judged.evidence[index]
        if closest is None:
            continue
        context = context_for(verdicts[index].forward_name, closest, reads)
        found = diagnose_step(value, closest, context, tol)
        verdicts[index] = replace(verdicts[index], diagnosis=found.code, message=found.message)
    return replace(judged, verdicts=tuple(verdicts))


def _dependencies(steps: Sequence[Step]) -> dict[int, set[int]]:
    """Step index -> indices of the steps it was computed from (same frame, assigned before it), transitively."""
    direct: dict[int, set[int]] = {}
    for i, step in enumerate(steps):
        direct[i] = {
            j
            for j, other in enumerate(steps)
            if j != i
            and other.frame == step.frame
            and other.order < step.order
            and other.name.split("[")[0] in step.reads
        }
    closed: dict[int, set[int]] = {}
    for i in range(len(steps)):
        seen: set[int] = set()
        todo = list(direct[i])
        while todo:
            j = todo.pop()
            if j not in seen:
                seen.add(j)
                todo.extend(direct[j])
        closed[i] = seen
    return closed


def judge_steps(
    steps: Sequence[Step],
    bindings: Mapping[str, Sequence[Binding]],
    tol: Tolerance,
    gradient_dicts: Collection[int] = (),
    returned: Sequence[np.ndarray] = (),
    returns: Sequence[FrameReturn] = (),
    failing_ids: Collection[int] = (),
) -> Judged:
    """Judge every step that matches a forward name, in the backward's order.

    ``gradient_dicts``: ids of the dicts the function returned as its gradients (their entries may
    be keyed by the forward name itself); ``returned``: the gradients it returned (a step holding one
    of them is marked ``returned``). Verdicts carry no diagnosis: see :func:`diagnose_verdicts`.

    A wrong step is ``confirmed`` when its value is returned, when a wrong step was computed from it
    (by name, in its frame), or when its frame returns an expression of it (``return dscores @ k``)
    that is a failing gradient (``failing_ids``) or a wrong step's value. Otherwise it is a partial
    value completed out of sight (``dx = probs.copy(); ...; return loss, dx / n``): never blamed.
    """
    names = {n for n, b in bindings.items() if b}
    matched: list[tuple[int, str]] = []
    unmatched: list[str] = []
    for i, step in enumerate(steps):
        forward_name = _forward_name(step, names, gradient_dicts)
        if forward_name is None and step.key not in names and not step.given:
            unmatched.append(step.name)  # (a forward value read back from the cache is not a step)
        elif forward_name is None:
            continue
        else:
            matched.append((i, forward_name))
    dependencies = _dependencies(steps)
    every_binding = [b for bs in bindings.values() for b in bs]
    position = {i: k for k, (i, _) in enumerate(matched)}
    verdicts = []
    evidence = []
    for i, forward_name in matched:
        verdict, closest = _judge(steps[i], forward_name, bindings[forward_name], tol, every_binding)
        evidence.append((steps[i].value, closest, steps[i].last_reads))
        depends = tuple(sorted(position[j] for j in dependencies[i] if j in position))
        reads = steps[i].last_reads
        unchecked = tuple(
            dict.fromkeys(
                steps[j].name
                for j in sorted(dependencies[i])
                if j not in position and steps[j].name.split("[")[0] in reads and steps[j].name in unmatched
            )
        )
        is_returned = any(_equal(steps[i].value, r) for r in returned)
        verdicts.append(replace(verdict, depends_on=depends, unchecked=unchecked, returned=is_returned))
    wrong_ids = {v.object_id for v in verdicts if not v.right} | set(failing_ids)
    for k, (i, _) in enumerate(matched):
        verdict = verdicts[k]
        if verdict.right:
            continue
        downstream = {steps[i].name} | {
            steps[j].name for j in dependencies if i in dependencies[j] and steps[j].frame == steps[i].frame
        }
        names = {n.split("[")[0] for n in downstream}
        feeds_wrong = any(k in v.depends_on and not v.right for v in verdicts)
        returned_wrong = any(
            oid in wrong_ids and reads & names
            for frame_return in returns
            if frame_return.frame == steps[i].frame
            for oid, reads in frame_return.elements
        )
        verdicts[k] = replace(verdict, confirmed=verdict.returned or feeds_wrong or returned_wrong)
    unmatched_names = tuple(dict.fromkeys(n for n in unmatched if not n.startswith("_")))
    return Judged(tuple(verdicts), unmatched_names, tuple(evidence))
