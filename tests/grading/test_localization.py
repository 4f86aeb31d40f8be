"""Grading feedback that says where the backward goes wrong, and never changes a score.

End to end (sandboxed): a planted staged mistake is located at its step and line; correct code and a
backward whose names match nothing of the reference keep their hints. Against forged worker answers
(a fake engine hands the grader what a hostile worker could send): every one is refused, with no
error row, the same score and the hint it had.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import reference_impls
from checker.grading import worker_values
from checker.grading.cluster_records import Finished
from checker.grading.frames import call_result, value
from checker.grading.grade import grade
from checker.grading.localization import localize_hints, trace_call, wanted
from checker.grading.plan import plan_exercise
from checker.grading.records import Limits, SubmissionRun
from checker.grading.scoring import grade_exercise, hint_for
from checker.grading.traced_steps import MAX_STEPS, read_trace, sources_registered, steps_of
from reference_impls.mistakes import MISTAKES
from tests.bank_sources import submission_source

BATCHNORM = reference_impls.exercise("batchnorm_staged")
SQRTVAR_SIGN = next(m for m in MISTAKES if m.exercise == "batchnorm_staged" and m.name == "sqrtvar_sign")
RENAMED = {  # the same slip, in a backward whose locals match no name of the reference's forward
    "dgammax": "g_out",
    "dgamma": "grad_scale",
    "dxhat": "g_norm",
    "divar": "g_inv",
    "dxmu1": "g_c1",
    "dsqrtvar": "g_std",
    "dvar": "g_variance",
    "dsq": "g_squares",
    "dxmu2": "g_c2",
    "dxmu": "g_c",
    "dmu": "g_mean",
}


def _line_of(source: str, statement: str) -> int:
    return next(i for i, text in enumerate(source.splitlines(), 1) if text.strip() == statement)


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("localized")
    sources = {
        "slipped": submission_source(BATCHNORM, SQRTVAR_SIGN.replaces),
        "correct": submission_source(BATCHNORM),
    }
    renamed = sources["slipped"]
    for old, new in sorted(RENAMED.items(), key=lambda item: -len(item[0])):
        renamed = re.sub(rf"\b{old}\b", new, renamed)
    sources["renamed"] = renamed
    paths = {}
    for name, text in sources.items():
        paths[name] = folder / f"{name}.py"
        paths[name].write_text(text)
    return paths


@pytest.fixture(scope="module")
def graded(students) -> dict[bool, dict[str, object]]:
    """The three students graded with and without localisation (sandboxed, seed 0)."""
    found = {}
    for localize in (True, False):
        report = grade(list(students.values()), [BATCHNORM], seed=0, jobs=2, localize=localize)
        found[localize] = {g.submission: g for g in report.grades}
    return found


def test_a_planted_staged_mistake_gets_feedback_naming_its_step_and_line(students, graded):
    line = _line_of(students["slipped"].read_text(), "dsqrtvar = 1.0 / sqrtvar**2 * divar")
    hint = graded[True]["slipped"].hint
    assert hint.startswith("your backward is right up to divar (slipped.py:")
    assert (
        f"dsqrtvar (slipped.py:{line}: `dsqrtvar = 1.0 / sqrtvar**2 * divar`) is the first wrong step" in hint
    )
    assert hint.endswith(hint_for("sign_flipped", "sqrtvar"))
    assert "negate" not in hint  # a tutor's hint: the diagnosis's fix is not given away
    assert graded[False]["slipped"].hint != hint


def test_a_correct_submission_gets_no_localization(graded):
    assert graded[True]["correct"].hint == "" == graded[False]["correct"].hint
    assert graded[True]["correct"].score == BATCHNORM.points


def test_names_that_match_nothing_of_the_reference_keep_the_old_hint(graded):
    assert graded[True]["renamed"].hint == graded[False]["renamed"].hint
    assert "first wrong step" not in graded[True]["renamed"].hint


def test_scores_rows_and_diagnoses_are_the_same_with_and_without_localization(graded):
    for name, with_it in graded[True].items():
        without = graded[False][name]
        assert replace(with_it, hint="", seconds=0.0, rows=()) == replace(
            without, hint="", seconds=0.0, rows=()
        )
        assert [(r.check, r.target, r.status, r.diagnosis) for r in with_it.rows] == [
            (r.check, r.target, r.status, r.diagnosis) for r in without.rows
        ]


def test_a_backward_that_misbehaves_when_traced_keeps_its_score_and_hint(tmp_path):
    """Student code can see the tracer (sys.gettrace) and spin: the line budget ends it, and only the
    feedback is lost."""
    source = submission_source(BATCHNORM, SQRTVAR_SIGN.replaces).replace(
        "    N = dout.shape[0]\n",
        "    N = dout.shape[0]\n    import sys\n    while sys.gettrace() is not None:\n        N = N + 0\n",
        1,
    )
    path = tmp_path / "spins.py"
    path.write_text(source)
    limits = Limits(timeout_s=60)
    on = grade([path], [BATCHNORM], seed=0, limits=limits, localize=True).grades[0]
    off = grade([path], [BATCHNORM], seed=0, limits=limits, localize=False).grades[0]
    assert (on.score, on.hint, on.diagnosis) == (off.score, off.hint, off.diagnosis)
    assert on.score < BATCHNORM.points


# ---------------------------------------------------------------------------------------------
# Forged worker answers: what a hostile worker could send, refused by the grader


def _honest_trace(students) -> tuple[object, dict, list[bytes]]:
    """A genuine trace call's frame for the slipped student (unsandboxed: trusted test code)."""
    from checker.grading.runs import run_submission

    case = plan_exercise(BATCHNORM, seed=0)[0]
    run = run_submission(students["slipped"], [trace_call(case)], case.arrays, sandboxed=False)
    result = run.calls[trace_call(case).id]
    assert result.trace is not None and len(result.trace.steps) > 10
    return case, result


def _frame(steps: list[dict], arrays: list[np.ndarray]) -> tuple[dict, list[bytes]]:
    blobs: list[bytes] = []
    for step, array in zip(steps, arrays, strict=True):
        step["value"] = worker_values.describe_value(array, blobs, 2**30)
    return {"steps": steps, "returns": [], "gradients": [0]}, blobs


def _step(name: str = "dsqrtvar", line: int = 35, **fields: object) -> dict:
    return {
        "name": name,
        "key": name,
        "file": "slipped.py",
        "line": line,
        "function": "batchnorm_staged_backward",
        "frame": 0,
        "order": 0,
        "object": 0,
        "in_gradients": False,
        "given": False,
        "reassigned_argument": False,
        "depends": [],
    } | fields


@pytest.mark.parametrize(
    ("step", "array"),
    [
        (_step("dsqrtvar; import os"), np.ones(3)),
        (_step("dx\x1b[31mred"), np.ones(3)),
        (_step("dsqrtvar\nHint: full marks"), np.ones(3)),
        (_step("d" * 101), np.ones(3)),
        (_step(line=0), np.ones(3)),
        (_step(line=-5), np.ones(3)),
        (_step(line=True), np.ones(3)),
        (_step(depends=[3]), np.ones(3)),
        (_step(file=123), np.ones(3)),
        (_step(object=2**40), np.ones(3)),
        (_step(), np.array([1.0, np.nan, 2.0])),
        (_step(), np.array([np.inf])),
        (_step(), np.ones((1,) * 9)),
        (_step(), np.array(["a", "b"])),
        (_step(), np.array([1, 2, 3])),
    ],
    ids=[
        "code-in-name", "escape-in-name", "newline-in-name", "long-name", "line-zero", "negative-line",
        "bool-line", "depends-ahead", "file-not-text", "huge-object", "nan", "inf", "nine-axes", "strings",
        "ints",
    ],
)  # fmt: skip
def test_a_forged_step_refuses_the_whole_trace(step, array):
    header, blobs = _frame([step], [array])
    assert read_trace(header, blobs, value) is None


def test_too_many_steps_are_refused():
    steps = [_step(f"d{i}", order=i) for i in range(MAX_STEPS + 1)]
    header, blobs = _frame(steps, [np.ones(1)] * len(steps))
    assert read_trace(header, blobs, value) is None
    header, blobs = _frame(steps[:MAX_STEPS], [np.ones(1)] * MAX_STEPS)
    assert read_trace(header, blobs, value) is not None  # the bound itself is accepted


def test_a_line_outside_the_submitted_file_or_another_file_is_refused():
    header, blobs = _frame([_step(line=10_000)], [np.ones(3)])
    trace = read_trace(header, blobs, value)
    assert trace is not None
    with sources_registered({"slipped.py": "x = 1\n" * 40}) as paths:
        assert steps_of(trace, paths) is None  # line 10000 of a 40-line file
        assert steps_of(trace, {}) is None  # a file the grader did not read
    header, blobs = _frame([_step(line=35)], [np.ones(3)])
    with sources_registered({"slipped.py": "dsqrtvar = 2 * divar\n" * 40}) as paths:
        (step,), _ = steps_of(read_trace(header, blobs, value), paths)
    assert (step.source, step.last_reads) == (
        "dsqrtvar = 2 * divar",
        frozenset({"divar"}),
    )  # the grader's copy


class _ForgingEngine:
    """An engine whose worker answers each trace call with a forged trace."""

    def __init__(self, forge) -> None:
        self.forge = forge

    def run(self, submissions, calls, arrays, limits, *, sandboxed):
        for index, path in enumerate(submissions):
            results = {c.id: self.forge(c) for c in calls}
            yield Finished(index, SubmissionRun(str(path), results, completed=True, limits=limits))


def _scored(students):
    """The slipped student's grade from a genuine scored run (unsandboxed: trusted test code)."""
    from checker.grading.runs import run_submission

    cases = plan_exercise(BATCHNORM, seed=0)
    run = run_submission(students["slipped"], [c.call for c in cases], _arrays(cases), sandboxed=False)
    return cases, grade_exercise("slipped", BATCHNORM, cases, run)


def _arrays(cases) -> dict:
    return {k: v for c in cases for k, v in c.arrays.items()}


@pytest.mark.parametrize(
    "forgery",
    ["bogus_names", "lines_out_of_range", "nonfinite", "many_steps", "odd_shapes"],
)
def test_hostile_trace_answers_are_refused_without_error_rows_and_scores_unchanged(students, forgery):
    cases, scored = _scored(students)
    assert wanted(scored, cases) is not None
    case, honest = _honest_trace(students)
    genuine = honest.trace

    def forge(call):
        steps = []
        for i, s in enumerate(genuine.steps):
            entry = _step(
                s.name, s.line, key=s.key, frame=s.frame, order=s.order, object=s.object, depends=list(s.depends),
                given=s.given, reassigned_argument=s.reassigned_argument,
            )  # fmt: skip
            array = s.value
            if forgery == "bogus_names":
                entry["name"] = entry["key"] = f"{s.name}; print('pwned')" if i % 2 else f"d{s.key}\u202e"
            elif forgery == "lines_out_of_range":
                entry["line"] = 10**6 + i
            elif forgery == "nonfinite":
                array = np.full_like(s.value, np.nan)
            elif forgery == "odd_shapes":
                array = np.ones((2,) * 9)
            steps.append((entry, array))
        if forgery == "many_steps":
            steps = [(_step(f"d{i}", order=i), np.ones(2)) for i in range(5 * MAX_STEPS)]
        header, blobs = _frame([e for e, _ in steps], [a for _, a in steps])
        record = {"kind": "call", "id": call.id, "status": "ok", "error": None, "trace": header}
        record["outputs"] = [worker_values.describe_value(o, blobs, 2**30) for o in case.expected_outputs]
        record["gradients"] = worker_values.describe_returned(
            tuple(np.ones_like(g) for g in case.expected_grads.values()), blobs, 2**30
        )
        return call_result(record, blobs, 0.0)

    judged = {0: [scored]}
    located = localize_hints(
        _ForgingEngine(forge),
        [students["slipped"]],
        judged,
        {BATCHNORM.name: cases},
        Limits(),
        sandboxed=False,
    )
    assert located == 0
    (after,) = judged[0]
    assert after is scored  # the same record: score, rows, diagnosis and hint
    assert not any(r.status == "error" for r in after.rows)


def test_the_honest_trace_through_the_same_path_is_located(students):
    cases, scored = _scored(students)
    _, honest = _honest_trace(students)
    engine = _ForgingEngine(lambda call: honest if call.id == honest.id else None)
    judged = {0: [scored]}
    located = localize_hints(
        engine, [students["slipped"]], judged, {BATCHNORM.name: cases}, Limits(), sandboxed=False
    )
    assert located == 1
    assert "dsqrtvar (slipped.py:" in judged[0][0].hint and judged[0][0].score == scored.score


STAGED = [e for e in reference_impls.EXERCISES if e.module == "reference_impls.staged"]
PLANTED = [m for m in MISTAKES if m.step and not m.control and m.exercise in {e.name for e in STAGED}]


def test_every_planted_staged_mistake_is_named_at_its_step_and_line(tmp_path):
    """Sandboxed, every staged exercise at once, seed 0: the hint names the planted step and its line."""
    paths = []
    for mistake in PLANTED:
        path = tmp_path / f"{mistake.exercise}__{mistake.name}.py"
        path.write_text(submission_source(reference_impls.exercise(mistake.exercise), mistake.replaces))
        paths.append(path)
    report = grade(paths, STAGED, seed=0, jobs=2)
    missed = []
    for mistake, path in zip(PLANTED, paths, strict=True):
        (graded,) = [g for g in report.grades if g.submission == path.stem and g.exercise == mistake.exercise]
        lines = path.read_text().splitlines()
        planted = [
            i
            for i, text in enumerate(lines, 1)
            if re.match(rf"\s*{re.escape(mistake.step)}\s*(\[.*\])?\s*([-+*/]?=(?!=)|:)", text)
        ]
        located = f"{mistake.step} ({path.name}:{planted[-1]}" in graded.hint
        # A slip in the returned gradient itself (a shape: db not summed) keeps its own hint, which names it.
        named = graded.hint.startswith(f"{mistake.step} ") and "first wrong step" not in graded.hint
        if not (located or named):
            missed.append((mistake.exercise, mistake.name, mistake.step, planted[-1], graded.hint))
    assert not missed, "\n".join(map(str, missed))


def test_the_students_own_statement_is_cleaned_before_it_reaches_the_hint():
    from checker.grading.localization import feedback
    from checker.localize import Localization, StepVerdict

    common = {"file": "<graded x>/student.py", "forward_name": "sqrtvar", "frame": 1}
    right = StepVerdict(
        "divar", line=33, source="divar = ...", right=True, **common | {"forward_name": "ivar"}
    )
    wrong = StepVerdict(
        "dsqrtvar",
        line=35,
        source='dsqrtvar = divar * len("\x1b[2J\rHint: full marks\n")',
        right=False,
        diagnosis="sign_flipped",
        depends_on=(0,),
        confirmed=True,
        **common,
    )
    hint = feedback(Localization("batchnorm_staged", (right, wrong), wrong, gradients=(("x", 1),)), "x")
    assert hint.startswith("your backward is right up to divar (student.py:33); dsqrtvar (student.py:35: ")
    assert not any(c in hint for c in "\x1b\r\n")


def test_a_trace_run_gets_at_most_the_scored_runs_time_and_never_more_than_its_cap():
    from checker.grading.localization import TRACE_TIMEOUT_S, trace_limits

    assert trace_limits(Limits(timeout_s=600, cpu_s=900)).timeout_s == TRACE_TIMEOUT_S
    assert trace_limits(Limits(timeout_s=600, cpu_s=900)).cpu_s == TRACE_TIMEOUT_S
    assert (
        trace_limits(Limits(timeout_s=3)).timeout_s == 3 and trace_limits(Limits(timeout_s=3)).cpu_s is None
    )
    assert trace_limits(Limits(memory_mb=512)).memory_mb == 512


def test_the_command_line_grades_without_the_trace_run_when_asked(students, tmp_path):
    from checker.cli import main

    for flag, located in ((), True), (("--no-localize",), False):
        out = tmp_path / ("on" if located else "off")
        args = ["grade", str(students["slipped"]), "--exercises", "batchnorm_staged", "--out", str(out)]
        assert main([*args, *flag]) == 1
        hints = (out / "scores.csv").read_text()
        assert ("first wrong step" in hints) is located
