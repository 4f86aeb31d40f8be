"""Where a student's backward goes wrong, as grading feedback: the localize engine across the sandbox.

The student's code runs only in the sandbox. For an exercise whose hint would be the generic one
(a gradient is wrong and no diagnosis names how), the grader runs a second, unscored *trace call*
of one failing case: the worker runs the backward under the engine's step recorder and sends each
step's name, line, value and the steps it was computed from (``worker_trace.py``). The grader checks
that data (``traced_steps.py``), reads each step's statement from its own copy of the submission, and
judges the steps itself, with the engine's rules (:func:`checker.localize.match.judge_steps`), against
the exact gradients of the *reference solution's* named intermediates at the same inputs and upstream
gradient (trusted code, under torch._numpy). The first wrong step becomes the hint.

Scores never depend on any of it: they come from the scored run alone. Names that match no reference
name, a refused trace, a run that failed: no localisation, and the generic hint stays.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from checker.compare import for_precision, mismatch_mask
from checker.execution.calls import normalize_gradients
from checker.grading.executions import execution_of
from checker.grading.plan import ExerciseCase
from checker.grading.records import Call, CallResult, Limits, clean_text, skipped_folder
from checker.grading.scoring import ExerciseGrade, hint_for
from checker.grading.trace_runs import Group, group_runs
from checker.grading.traced_steps import sources_registered, steps_of
from checker.localize import Localization
from checker.localize.intermediates import ForwardTrace
from checker.localize.localization import first_wrong_among
from checker.localize.locate import context_builder, wrong_step_by_gradient
from checker.localize.match import StepVerdict, diagnose_verdicts, judge_steps
from checker.localize.runs import FLOAT64_EPS, Plain, objective_of, traced_run, user_files
from checker.localize.steps import BackwardRun

__all__ = [
    "TRACE_TIMEOUT_S",
    "Wanted",
    "feedback",
    "localize_answer",
    "localize_hints",
    "read_sources",
    "reference_intermediates",
    "trace_call",
    "trace_limits",
    "wanted",
    "warm_up",
]

#: What of a submission the grader reads for the hints, in all (it holds and parses it itself: about
#: 5 s of its own time per MiB; an honest submission is a few tens of kB).
_MAX_SOURCE_BYTES = 2**20
_MAX_SOURCE_FILES = 200
_MAX_DEPTH = 32
#: Wall-clock seconds a trace run may take (at most the scored run's): a backward that stalls only when
#: traced costs its own feedback, never the class's time.
TRACE_TIMEOUT_S = 20.0


def trace_limits(limits: Limits) -> Limits:
    """The scored run's limits, with the time cut to :data:`TRACE_TIMEOUT_S`."""
    cpu = limits.cpu_s if limits.cpu_s is None else min(limits.cpu_s, TRACE_TIMEOUT_S)
    return replace(limits, timeout_s=min(limits.timeout_s, TRACE_TIMEOUT_S), cpu_s=cpu)


#: Leading diagnoses that are not about a wrong gradient: their hints stay as they are.
_NOT_GRADIENTS = ("forward_mismatch", "mutates_input", "stateful", "nonfinite")


@dataclass(frozen=True, eq=False)
class Wanted:
    """A grade whose hint a localisation could replace: the hint's gradient, and the cases to trace
    (the hint's case first, then the other cases where a gradient failed behind a right forward),
    each with its failing gradients (the hint's first)."""

    grade: ExerciseGrade
    gradient: str
    cases: tuple[tuple[ExerciseCase, tuple[str, ...]], ...]


def wanted(grade: ExerciseGrade, cases: Sequence[ExerciseCase]) -> Wanted | None:
    """What to trace for ``grade`` when its hint is about a wrong gradient; ``None`` otherwise."""
    if grade.status == "passed" or grade.diagnosis in _NOT_GRADIENTS:
        return None
    named = next((r for r in grade.rows if r.failed and r.diagnosis == grade.diagnosis), None)
    if named is None or named.status != "fail" or grade.hint != hint_for(grade.diagnosis, named.target):
        return None
    chosen = []
    for case in sorted(cases, key=lambda c: (c.case.index != named.case, c.case.index)):
        rows = [r for r in grade.rows if r.case == case.case.index]
        if named.target not in case.differentiable or any(
            r.failed and (r.check in ("forward", "forward_reference", "call") or r.status == "error")
            for r in rows
        ):
            continue
        failing = [
            r.target for r in rows if r.failed and r.target in case.differentiable and r.check != "shape"
        ]
        if failing:
            ordered = sorted(dict.fromkeys(failing), key=lambda n: n != named.target)
            chosen.append((case, tuple(ordered)))
    return Wanted(grade, named.target, tuple(chosen)) if chosen else None


def trace_call(case: ExerciseCase) -> Call:
    """The case's call, run once with the backward traced (never scored)."""
    return replace(case.call, id=f"{case.call.id}/trace", trace=True, repeat_backward=False)


def _python_files(folder: Path) -> Iterator[tuple[Path, str]]:
    """The ``.py`` files under ``folder`` as the copy into the sandbox sees them (no hidden folders, no
    ``__pycache__``, no symbolic links), in sorted order; walked without recursion and at most
    :data:`_MAX_DEPTH` folders deep (a student chooses the tree)."""
    pending = [(folder, "", 0)]
    while pending:
        here, prefix, depth = pending.pop()
        with os.scandir(here) as entries:
            found = sorted(entries, key=lambda e: e.name)
        folders = []
        for entry in found:
            if entry.is_symlink():
                continue
            if entry.is_file() and entry.name.endswith(".py"):
                yield Path(entry.path), prefix + entry.name
            elif entry.is_dir() and depth < _MAX_DEPTH and not skipped_folder(entry.name):
                folders.append((Path(entry.path), f"{prefix}{entry.name}/", depth + 1))
        pending += reversed(folders)


def read_sources(submission: Path) -> dict[str, str]:
    """The submission's Python files as the grader reads them (relative path -> text), before any run:
    at most :data:`_MAX_SOURCE_FILES` files and :data:`_MAX_SOURCE_BYTES` in all (the rest is not read:
    no localisation in it). A tree that cannot be read gives what was read before it."""
    sources: dict[str, str] = {}
    if submission.is_symlink():
        return sources
    budget = _MAX_SOURCE_BYTES
    try:
        found = _python_files(submission) if submission.is_dir() else iter([(submission, submission.name)])
        for path, relative in found:
            if len(sources) >= _MAX_SOURCE_FILES:
                break
            try:
                if path.is_symlink() or not path.is_file() or path.stat().st_size > budget:
                    continue
                sources[relative] = text = path.read_text(encoding="utf-8", errors="replace")
                budget -= len(text.encode("utf-8", errors="replace"))
            except OSError:
                continue
    except OSError:
        pass
    return sources


def _expected_value(case: ExerciseCase) -> float:
    if case.exercise.style == "layer":
        return float(sum(np.sum(o * d) for o, d in zip(case.expected_outputs, case.douts, strict=True)))
    return float(np.reshape(case.expected_outputs[0], ()))


def _params(case: ExerciseCase) -> dict[str, np.ndarray]:
    return {n: case.sent[n] for n in case.differentiable} if case.exercise.style == "model" else {}


def _plain(case: ExerciseCase) -> Plain:
    """What the engine knows of a plain run, here the reference's (float64): L, outputs, the names."""
    outputs = case.expected_outputs if case.exercise.style == "layer" else ()
    return Plain(
        BackwardRun(None), _expected_value(case), None, outputs, FLOAT64_EPS, list(case.differentiable)
    )


def _reference(case: ExerciseCase) -> ForwardTrace:
    try:
        return reference_intermediates(case)
    except Exception as err:  # the reference's forward under torch._numpy: no localisation
        return ForwardTrace(reason=f"{type(err).__name__}: {err}")


def reference_intermediates(case: ExerciseCase) -> ForwardTrace:
    """The exact gradient of every named intermediate of the reference solution's forward, at the
    case's inputs and upstream gradient (trusted code, in this process)."""
    target = case.target
    params = _params(case)
    objective = objective_of(
        target, copy.deepcopy(case.case.hyper), case.douts, params, case.case.dims, case.case.seed
    )
    values = {k: np.array(v, copy=True) for k, v in (dict(case.case.arrays) | params).items()}
    return traced_run(target, values, objective, _plain(case), user_files(target), 200_000)


def _object_of(result: CallResult, trace_gradients: Sequence[int], case: ExerciseCase) -> dict[str, int]:
    """Gradient name -> the object (numbered as in the steps, from 1) the student returned for it."""
    returned = result.gradients
    if returned is None or len(returned.values) != len(trace_gradients):
        return {}
    objects = [g + 1 for g in trace_gradients]
    raw: Any
    if returned.structure in ("tuple", "list"):
        raw = tuple(objects)
    elif returned.structure == "dict":
        raw = dict(zip(returned.keys, objects, strict=True))
    else:
        raw = objects[0] if objects else None
    found, _ = normalize_gradients(raw, list(case.differentiable), "trace")
    return {k: v for k, v in found.items() if isinstance(v, int)}


def _own_step(verdicts: Sequence[StepVerdict], name: str, obj: int | None) -> int | None:
    for i in range(len(verdicts) - 1, -1, -1):
        if obj is not None and verdicts[i].object_id == obj:
            return i
    for i in range(len(verdicts) - 1, -1, -1):
        if verdicts[i].is_input and verdicts[i].forward_name == name:
            return i
    return None


def localize_answer(
    case: ExerciseCase,
    result: CallResult,
    sources: Mapping[str, str],
    forward: ForwardTrace,
    failing: Sequence[str],
    *,
    registered: Mapping[str, str] | None = None,
) -> Localization | None:
    """The first wrong step of a trace call's answer, judged by the grader; ``None`` when there is none
    (the trace was refused, its files or lines are not the submission's, no name matches, ...).
    ``registered``: ``sources`` already under :func:`sources_registered` (parsed once per submission)."""
    trace = result.trace
    if result.status != "ok" or trace is None or forward.reason or not forward.bindings:
        return None
    run = execution_of(case, result)
    if run.forward_problem:
        return None
    grads, problems = normalize_gradients(run.raw_grads, list(case.differentiable), "trace")
    if problems:
        return None
    tol = for_precision(case.target.tol.exact, run.eps)
    with nullcontext(registered) if registered is not None else sources_registered(sources) as paths:
        built = steps_of(trace, paths)
        if built is None:
            return None
        steps, returns = built
        return _judge(case, grads, trace.gradients, result, steps, returns, forward, tol, failing)


def _wrong(grads: Mapping[str, Any], forward: ForwardTrace, tol: Any) -> list[str]:
    exact = {b.input: b.gradient for bs in forward.bindings.values() for b in bs if b.input}
    wrong = []
    for name, value in grads.items():
        mine = np.asarray(value, dtype=np.float64) if isinstance(value, np.ndarray) else None
        if name in exact and (
            mine is None or mine.shape != exact[name].shape or mismatch_mask(mine, exact[name], tol).any()
        ):
            wrong.append(name)
    return wrong


def _judge(
    case: ExerciseCase,
    grads: Mapping[str, Any],
    trace_gradients: Sequence[int],
    result: CallResult,
    steps: list[Any],
    returns: list[Any],
    forward: ForwardTrace,
    tol: Any,
    failing: Sequence[str],
) -> Localization | None:
    """The tail of :func:`checker.localize.localize`, on the grader's side: match, judge, blame."""
    wrong = _wrong(grads, forward, tol)
    failing = [g for g in failing if g in wrong]
    if not failing:
        return None  # the trace call's gradients are right after all (a stateful backward): nothing to say
    objects = _object_of(result, trace_gradients, case)
    returned = [np.asarray(g) for g in grads.values() if isinstance(g, np.ndarray)]
    failing_ids = [objects[g] for g in wrong if g in objects]
    gradient_dicts = [1] if any(s.container for s in steps) else []
    judged = judge_steps(steps, forward.bindings, tol, gradient_dicts, returned, returns, failing_ids)
    verdicts = judged.verdicts
    first = first_wrong_among(verdicts) if verdicts else None
    if first is None:
        return None
    by_gradient = wrong_step_by_gradient(
        verdicts, failing, lambda gradient: _own_step(verdicts, gradient, objects.get(gradient))
    )
    shown = sorted({first, *(index for _, index in by_gradient)})
    params = _params(case)
    plain = _plain(case)
    context_for = context_builder(
        case.target, case.case.arrays, params, case.douts, case.case.dims, plain, forward
    )
    judged = diagnose_verdicts(judged, shown, tol, context_for)
    return Localization(
        case.exercise.name,
        steps=judged.verdicts,
        first_wrong=judged.verdicts[first],
        gradients=tuple(by_gradient),
        unmatched=judged.unmatched,
    )


def _at(step: StepVerdict) -> str:
    return f"{step.name} ({step.location})"


def _informative(localization: Localization, step: StepVerdict) -> bool:
    """Blaming a returned gradient itself says something only when it was computed from right, checked
    steps alone (``dx = dxmu`` with ``dxmu`` right); read from unchecked locals (names the reference
    does not have), the mistake may be anywhere in them, and the generic hint is as good."""
    if not step.is_input:
        return True
    computed_from = [localization.steps[i] for i in step.depends_on]
    return bool(computed_from) and all(s.right for s in computed_from) and not step.unchecked


def feedback(localization: Localization, gradient: str) -> str:
    """The hint that says where the backward goes wrong behind ``gradient`` ("" when it cannot say):
    the last right step it was computed from, the first wrong one with its statement, and the hint of
    that step's diagnosis (:func:`~checker.grading.scoring.hint_for`), which teaches without giving the
    solution away (the diagnosis's own message says the fix, so it is left out here).

    ``your backward is right up to divar (mylayers.py:33); dsqrtvar (mylayers.py:35: `dsqrtvar = ...`)
    is the first wrong step. dsqrtvar points the wrong way: check the sign of each term.``
    """
    step = localization.for_gradient(gradient) or localization.first_wrong
    if step is None or not _informative(localization, step):
        return ""
    right = localization.right_before(step)
    statement = f": `{step.source}`" if step.source else ""
    wrong = f"{step.name} ({step.location}{statement}) is the first wrong step"
    text = f"your backward is right up to {_at(right[-1])}; {wrong}" if right else f"{wrong} of your backward"
    if step.unchecked:
        were = "was" if len(step.unchecked) == 1 else "were"
        text += (
            f"; it reads {', '.join(step.unchecked)}, which {were} not checked (no value of the forward "
            "has that name): the mistake may be there"
        )
    # The statement is the student's own text (a string literal may hold anything): cleaned like a worker's.
    text = f"{text}. {hint_for(step.diagnosis, step.forward_name)}".replace("\n", " ")
    return clean_text(text, 2000)


def _localized(
    case: ExerciseCase,
    failing: Sequence[str],
    gradient: str,
    result: CallResult | None,
    registered: Mapping[str, str],
    forward: ForwardTrace,
) -> str:
    if result is None:
        return ""
    try:
        found = localize_answer(case, result, {}, forward, failing, registered=registered)
        return feedback(found, gradient) if found is not None else ""
    except Exception:  # feedback only: whatever goes wrong here, the generic hint stays
        return ""


def _relocate(
    grades: list[ExerciseGrade],
    todo: Sequence[Wanted],
    run: Any,
    sources: Mapping[str, str],
    forwards: dict[int, ForwardTrace],
) -> int:
    """Replace the hints of ``grades`` that one submission's trace run locates; returns how many."""
    replaced = 0
    with sources_registered(sources) as registered:  # parsed once for all its exercises and cases
        for w in todo:
            text = ""
            for case, failing in w.cases:
                if id(case) not in forwards:
                    forwards[id(case)] = _reference(case)
                result = run.calls.get(trace_call(case).id)
                text = _localized(case, failing, w.gradient, result, registered, forwards[id(case)])
                if text:
                    break
            if text:
                at = next(k for k, g in enumerate(grades) if g is w.grade)
                grades[at] = replace(w.grade, hint=text)
                replaced += 1
    return replaced


def _read_safely(submission: Path) -> dict[str, str]:
    try:
        return read_sources(submission)
    except Exception:  # feedback only: a tree the grader cannot read costs that student the hint
        return {}


def warm_up(cases_of: Mapping[str, Sequence[ExerciseCase]]) -> dict[int, ForwardTrace]:
    """The reference's intermediates of each exercise's first case, computed before any student code
    runs, so that torch and the modules the tracing needs are loaded while no file a student could
    have written to exists (the second line under ``--no-sandbox``, as ``outputs.warm_up``). Returns
    them by ``id(case)``, for :func:`localize_hints`."""
    return {id(cases[0]): _reference(cases[0]) for cases in cases_of.values() if cases}


def localize_hints(
    engine: Any,
    paths: Sequence[Path],
    judged: dict[int, list[ExerciseGrade]],
    cases_of: Mapping[str, Sequence[ExerciseCase]],
    limits: Limits,
    *,
    sandboxed: bool,
    forwards: dict[int, ForwardTrace] | None = None,
) -> int:
    """Replace the generic hint of each grade in ``judged`` (submission index -> grades) whose first
    wrong step can be located; returns how many were. The trace calls run on ``engine`` (one run per
    group of submissions that need the same cases, several groups at once where the engine allows:
    :mod:`.trace_runs`), after the scored runs; the scores are untouched."""
    todo: dict[int, list[Wanted]] = {}
    for index, grades in judged.items():
        found = [w for w in (wanted(g, cases_of.get(g.exercise, ())) for g in grades) if w is not None]
        if found:
            todo[index] = found
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, found in todo.items():
        groups.setdefault(tuple(sorted({c.call.id for w in found for c, _ in w.cases})), []).append(index)
    forwards = {} if forwards is None else forwards
    planned = []
    for indices in groups.values():
        cases = list({c.call.id: c for w in todo[indices[0]] for c, _ in w.cases}.values())
        arrays = {k: v for c in cases for k, v in c.arrays.items()}
        planned.append(Group(indices, [trace_call(c) for c in cases], arrays))
    replaced = 0
    # Each run is judged as it arrives and let go (the answers are never all held), one at a time in
    # this thread; the sources are read just before each group's run starts.
    for group, sources, finished in group_runs(
        engine,
        planned,
        paths,
        trace_limits(limits),
        sandboxed=sandboxed,
        before=lambda group: {i: _read_safely(paths[i]) for i in group.indices},
    ):
        if finished.run is not None:
            index = group.indices[finished.index]
            replaced += _relocate(judged[index], todo[index], finished.run, sources[index], forwards)
    return replaced
