"""The grading localisation against a student attacking the grader itself, not its own feedback.

What the grader does with a trace answer happens in the grader's process, outside every sandbox limit:
reading the submission's files, parsing them, judging the steps. A hostile submission must not be able
to crash it (no outputs for anyone), stall it or make it hold memory, and what it shows of the
student's own source must be the line the student's code ran, with nothing that reorders the display.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import reference_impls
from checker.grading import worker_values
from checker.grading.frames import value
from checker.grading.localization import feedback, localize_hints, read_sources, trace_call, wanted
from checker.grading.plan import plan_exercise
from checker.grading.records import Limits
from checker.grading.scoring import grade_exercise
from checker.grading.traced_steps import read_trace, sources_registered, steps_of
from checker.localize import Localization, StepVerdict
from checker.localize import source as source_module
from reference_impls.mistakes import MISTAKES
from tests.bank_sources import submission_source

BATCHNORM = reference_impls.exercise("batchnorm_staged")
SQRTVAR_SIGN = next(m for m in MISTAKES if m.exercise == "batchnorm_staged" and m.name == "sqrtvar_sign")
SLIPPED = submission_source(BATCHNORM, SQRTVAR_SIGN.replaces)
DEPTH = 1200  # folders: past the interpreter's recursion limit


def _deep_folder(parent: Path, name: str, depth: int) -> None:
    """``parent/name/a/a/.../a`` (``depth`` levels), made through directory descriptors: the path is
    never spelled out, and no recursive helper of the standard library is needed."""
    os.mkdir(parent / name)
    fd = os.open(parent / name, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("a", dir_fd=fd)
            deeper = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = deeper
    finally:
        os.close(fd)


def _remove_deep_folder(top: Path) -> None:
    """Undo :func:`_deep_folder` without recursion (pytest's own cleanup would recurse)."""
    chain = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        while "a" in os.listdir(chain[-1]):
            chain.append(os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=chain[-1]))
        while len(chain) > 1:
            os.close(chain.pop())
            os.rmdir("a", dir_fd=chain[-1])
    finally:
        for fd in chain:
            os.close(fd)
    os.rmdir(top)


class _HonestEngine:
    """Runs each trace call for real, unsandboxed (trusted test code stands in for the worker)."""

    def run(self, submissions, calls, arrays, limits, *, sandboxed):
        from checker.grading.cluster_records import Finished
        from checker.grading.runs import run_submission

        for index, path in enumerate(submissions):
            yield Finished(index, run_submission(path, calls, arrays, sandboxed=False))


def _graded(path: Path):
    from checker.grading.runs import run_submission

    cases = plan_exercise(BATCHNORM, seed=0)
    arrays = {k: v for c in cases for k, v in c.arrays.items()}
    run = run_submission(path, [c.call for c in cases], arrays, sandboxed=False)
    return cases, grade_exercise(path.name, BATCHNORM, cases, run)


def test_a_folder_too_deep_to_walk_recursively_costs_no_one_their_report(tmp_path):
    """A hidden folder 1200 levels deep is skipped by the copy into the sandbox; the grader's own
    reading of the sources for the hint must not walk into it and raise RecursionError out of grade()."""
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "slipped.py").write_text(SLIPPED)
    _deep_folder(folder, ".hidden", DEPTH)
    try:
        assert set(read_sources(folder)) == {"slipped.py"}
        cases, scored = _graded(folder)
        judged = {0: [scored]}
        located = localize_hints(
            _HonestEngine(), [folder], judged, {BATCHNORM.name: cases}, Limits(), sandboxed=False
        )
        assert located == 1 and "dsqrtvar (slipped.py:" in judged[0][0].hint
        assert judged[0][0].score == scored.score
    finally:
        _remove_deep_folder(folder / ".hidden")


def test_the_sources_read_for_the_hint_are_bounded_in_all_not_only_per_file(tmp_path):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "a_slipped.py").write_text(SLIPPED)
    for i in range(40):  # 40 files of 1 MiB: 40 MiB the grader would hold, and parse, per student
        (folder / f"b_padding_{i:02d}.py").write_text("x = 1\n" * (2**20 // 6))
    read = read_sources(folder)
    assert "a_slipped.py" in read
    assert sum(len(text) for text in read.values()) <= 2**20


def _step(line: int) -> dict:
    return {
        "name": "dsqrtvar", "key": "dsqrtvar", "file": "long.py", "line": line, "function": "f",
        "frame": 0, "order": 0, "object": 0, "in_gradients": False, "given": False,
        "reassigned_argument": False, "depends": [],
    }  # fmt: skip


def _trace(line: int):
    blobs: list[bytes] = []
    step = _step(line) | {"value": worker_values.describe_value(np.ones(3), blobs, 2**30)}
    return read_trace({"steps": [step], "returns": [], "gradients": [0]}, blobs, value)


def test_a_long_submission_file_is_read_in_one_pass_not_once_per_statement():
    """ast.get_source_segment splits the whole file again for every statement: 10,000 statements took
    minutes of the grader's own time (no sandbox limit applies there), with the parse lock held."""
    text = "def f():\n" + "".join(f"    a{i} = {i}\n" for i in range(10_000))
    done: list[object] = []

    def judge() -> None:
        with sources_registered({"long.py": text}) as paths:
            done.append(steps_of(_trace(5_000), paths))

    worker = threading.Thread(target=judge, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=60)  # linear: well under a second; quadratic: several minutes
    assert done, (
        f"reading one statement of a 10,000-line file took more than {time.monotonic() - started:.0f} s"
    )
    (step,), _ = done[0]
    assert step.source == "a4998 = 4998"


def test_the_statements_of_a_graded_file_are_not_kept_after_its_hint(monkeypatch):
    before = source_module._statements.cache_info().currsize
    with sources_registered({"long.py": "x = 1\n" * 50}) as paths:
        steps_of(_trace(7), paths)
        assert source_module._statements.cache_info().currsize == before + 1
    assert source_module._statements.cache_info().currsize <= before


@pytest.mark.parametrize("separator", ["\x0c", "\x0b", "\x1c", "\x85", "\u2028", "\u2029"])
def test_the_line_shown_is_the_line_python_ran_whatever_the_line_separators(separator):
    """str.splitlines also breaks at form feeds and Unicode separators; Python (and linecache) do not:
    a student's file with one of them in a string or comment must not shift the line shown."""
    text = f"note = 'a{separator}b'  # {separator}\n" + 'grads = {\n    "W": dW,\n    "b": db,\n}\n'
    with sources_registered({"long.py": text}) as paths:
        (step,), _ = steps_of(_trace(4), paths)
    assert step.source == '"b": db'


@pytest.mark.parametrize("control", ["\u202e", "\u2066", "\u200f", "\u2028", "\u061c"])
def test_bidirectional_controls_in_the_students_statement_cannot_reorder_the_hint(control):
    """Trojan-source style: an unterminated right-to-left override in a string literal of the statement
    would show the rest of the hint (and of its CSV row, in a bidi-aware viewer) reversed."""
    common = {"file": "<graded x>/student.py", "forward_name": "sqrtvar", "frame": 1}
    right = StepVerdict(
        "divar", line=33, source="divar = ...", right=True, **common | {"forward_name": "ivar"}
    )
    wrong = StepVerdict(
        "dsqrtvar", line=35, source=f'dsqrtvar = divar * len("{control}x")', right=False,
        diagnosis="sign_flipped", depends_on=(0,), confirmed=True, **common,
    )  # fmt: skip
    hint = feedback(Localization("batchnorm_staged", (right, wrong), wrong, gradients=(("x", 1),)), "x")
    assert "first wrong step" in hint and control not in hint


def test_a_reassigned_argument_is_judged_when_its_name_has_several_bindings_of_its_shape():
    """``dh = dh + dnext`` in a loop: ``h`` is bound once per step. Looking the bindings up with ``in``
    compared their arrays and raised ValueError, so the grader (and the CLI) lost the localisation."""
    from checker.compare import Tolerance
    from checker.localize.intermediates import Binding
    from checker.localize.match import judge_steps
    from checker.localize.steps import Step

    h = [Binding("h", np.full(3, float(t)), np.full(3, float(t)), "f", 2, t) for t in range(2)]
    step = Step("dh", "dh", np.full(3, 7.0), "s.py", 4, "dh = dh + 1", 0, frozenset({"dh"}), 0, "f", 1)
    step = replace(step, reassigned_argument=True)
    judged = judge_steps([step], {"h": tuple(h)}, Tolerance(rtol=1e-9, atol=1e-12), returned=[step.value])
    (verdict,) = judged.verdicts
    assert not verdict.right and verdict.confirmed


def test_each_trace_run_is_judged_as_it_arrives_not_after_the_whole_group(tmp_path):
    """A forged answer may be tens of MB of arrays (up to ``max_output_bytes``): the grader must not hold
    every answer of a group (possibly the whole class) at once before judging the first."""
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"s{i}.py")
        paths[-1].write_text(SLIPPED)
    cases, _ = _graded(paths[0])
    judged = {i: [_graded(p)[1]] for i, p in enumerate(paths)}
    before = {i: judged[i][0].hint for i in judged}
    seen_when_yielding: list[int] = []

    class Streaming(_HonestEngine):
        def run(self, submissions, calls, arrays, limits, *, sandboxed):
            for k, finished in enumerate(
                super().run(submissions, calls, arrays, limits, sandboxed=sandboxed)
            ):
                seen_when_yielding.append(sum(judged[i][0].hint != before[i] for i in range(k)))
                yield finished

    located = localize_hints(Streaming(), paths, judged, {BATCHNORM.name: cases}, Limits(), sandboxed=False)
    assert located == 3
    assert seen_when_yielding == [0, 1, 2]  # run k is yielded once runs 0..k-1 have their hints


@pytest.mark.parametrize("where", ["function", "dtype", "type"])
def test_a_forged_record_nested_too_deep_to_print_refuses_the_trace_instead_of_raising(where):
    """Any JSON value where text is expected is printed with str(): a deeply nested list raised
    RecursionError out of read_trace, turning the call into a harness-worded error instead of a refusal."""
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    blobs: list[bytes] = []
    step = _step(4) | {"value": worker_values.describe_value(np.ones(3), blobs, 2**30)}
    if where == "function":
        step["function"] = nested
    else:
        step["value"][where] = nested
    assert read_trace({"steps": [step], "returns": [], "gradients": [0]}, blobs, value) is None


def test_a_submission_is_parsed_once_for_its_hints_not_once_per_traced_case(tmp_path, monkeypatch):
    """Parsing is the grader's own time (a MiB of source: seconds); a forged answer that is refused for
    every case must not make the grader parse the student's files again for each one."""
    from checker.grading import traced_steps
    from checker.grading.cluster_records import Finished
    from checker.grading.frames import call_result
    from checker.grading.records import SubmissionRun

    path = tmp_path / "slipped.py"
    path.write_text(SLIPPED)
    cases, scored = _graded(path)
    parsed: list[str] = []
    real_parse = traced_steps.parse_source
    monkeypatch.setattr(traced_steps, "parse_source", lambda text: parsed.append(text) or real_parse(text))

    def forged(call):
        blobs: list[bytes] = []
        step = _step(1) | {"file": "slipped.py", "name": "nothing", "key": "nothing"}
        step["value"] = worker_values.describe_value(np.ones(3), blobs, 2**30)
        case = next(c for c in cases if trace_call(c).id == call.id)
        record = {
            "id": call.id,
            "status": "ok",
            "trace": {"steps": [step], "returns": [], "gradients": [0, 1, 2]},
        }
        record["outputs"] = [worker_values.describe_value(o, blobs, 2**30) for o in case.expected_outputs]
        grads = tuple(np.ones_like(g) for g in case.expected_grads.values())
        record["gradients"] = worker_values.describe_returned(grads, blobs, 2**30)
        return call_result(record, blobs, 0.0)

    class Forging:
        def run(self, submissions, calls, arrays, limits, *, sandboxed):
            results = {c.id: forged(c) for c in calls}
            yield Finished(0, SubmissionRun(str(path), results, completed=True, limits=limits))

    judged = {0: [scored]}
    traced = len(wanted(scored, cases).cases)
    assert traced > 1
    assert localize_hints(Forging(), [path], judged, {BATCHNORM.name: cases}, Limits(), sandboxed=False) == 0
    assert judged[0][0] is scored
    assert len(parsed) == 1


def test_a_step_placed_on_a_long_compound_header_shows_no_more_than_a_statement():
    """A forged step may name any line; a ``for``/``if`` header is shown whole, trailing comment
    included, where a simple statement is cut to 120 characters: a page of the student's text in the hint."""
    text = "if True:  # " + "SCORE OVERRIDE: full marks, approved. " * 50 + "\n    dsqrtvar = 1\n"
    with sources_registered({"long.py": text}) as paths:
        (step,), _ = steps_of(_trace(1), paths)
    assert step.source.startswith("if True:") and len(step.source) <= 120


def test_grading_a_folder_with_a_hidden_tree_too_deep_to_walk_still_reports(tmp_path):
    """End to end, sandboxed: the same attack through grade() (it raised RecursionError out of it)."""
    from checker.grading.grade import grade

    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "slipped.py").write_text(SLIPPED)
    _deep_folder(folder, ".hidden", DEPTH)
    try:
        (graded,) = grade([folder], [BATCHNORM], seed=0).grades
    finally:
        _remove_deep_folder(folder / ".hidden")
    assert graded.score < BATCHNORM.points and "dsqrtvar (slipped.py:" in graded.hint
