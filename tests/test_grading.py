"""Grading end to end: practice skeletons score 0, reference solutions full marks, each planted mistake
partial credit with its diagnosis; hostile submissions only hurt themselves; outputs follow their formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest

import reference_impls
from checker.cli import main
from checker.grading.grade import grade
from checker.grading.outputs import gradescope_results, junit_xml
from checker.grading.records import Limits
from reference_impls.mistakes import MISTAKES
from tests.bank_sources import submission_source

HOSTILE = Path(__file__).parent / "grading" / "submissions"
AFFINE = reference_impls.exercise("affine")


@pytest.fixture(scope="module")
def complete_solution(tmp_path_factory) -> Path:
    """One student who did every exercise: a folder with one file per exercise."""
    folder = tmp_path_factory.mktemp("complete") / "complete_student"
    folder.mkdir()
    for exercise in reference_impls.EXERCISES:
        (folder / f"{exercise.name}.py").write_text(submission_source(exercise))
    return folder


@pytest.fixture(scope="module")
def mistake_files(tmp_path_factory) -> list[tuple[object, Path]]:
    folder = tmp_path_factory.mktemp("mistakes")
    files = []
    for mistake in MISTAKES:
        path = folder / f"{mistake.exercise}__{mistake.name}.py"
        path.write_text(submission_source(reference_impls.exercise(mistake.exercise), mistake.replaces))
        files.append((mistake, path))
    return files


def test_practice_skeleton_grades_zero_with_not_implemented(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["practice", "batchnorm"]) == 0
    skeleton = tmp_path / "batchnorm_practice.py"
    assert "def batchnorm_backward(dout, cache):" in skeleton.read_text()
    assert "raise NotImplementedError" in skeleton.read_text()
    assert main(["grade", str(skeleton), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "0/15" in out and "not implemented" in out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["score"] == 0 and results["tests"][0]["status"] == "failed"


def test_practice_refuses_to_overwrite_and_lists_exercises(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["practice", "relu"]) == 0
    assert main(["practice", "relu"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["practice", "--list"]) == 0
    assert "two_layer_net" in capsys.readouterr().out


def test_reference_solutions_get_full_marks_on_every_exercise(complete_solution):
    report = grade([complete_solution], reference_impls.EXERCISES, seed=0)
    partial = [(g.exercise, g.score, g.message) for g in report.grades if g.score != g.max_score]
    assert not partial
    score, most = report.totals()["complete_student"]
    assert score == most == sum(e.points for e in reference_impls.EXERCISES)


def test_each_planted_mistake_gets_partial_credit_and_its_diagnosis(mistake_files):
    wrong = []
    for exercise in reference_impls.EXERCISES:
        batch = [(m, p) for m, p in mistake_files if m.exercise == exercise.name]
        report = grade([p for _, p in batch], [exercise], seed=0)
        for (mistake, _), g in zip(batch, report.grades, strict=True):
            if mistake.control:
                ok = g.score == g.max_score
            else:
                codes = {r.diagnosis for r in g.rows}
                ok = 0 < g.score < g.max_score and (not mistake.diagnosis or mistake.diagnosis in codes)
                ok = ok and bool(g.hint) and bool(g.message)
            if not ok:
                wrong.append((exercise.name, mistake.name, g.score, g.diagnosis, g.message))
    assert not wrong


def test_hints_teach_without_giving_the_solution_away(mistake_files):
    path = next(p for m, p in mistake_files if m.name == "bias_not_summed" and m.exercise == "affine")
    g = grade([path], [AFFINE]).grades[0]
    assert g.diagnosis == "unreduced_broadcast"
    assert "broadcast" in g.hint and "sum(axis" not in g.hint and ".sum(" not in g.hint


def test_hostile_submissions_only_hurt_themselves(tmp_path):
    hostile = [
        HOSTILE / n
        for n in (
            "hang.py",
            "segfault.py",
            "eats_memory.py",
            "imports_torch.py",
            "syntax_error.py",
            "wrong_types.py",
        )
    ]
    good = tmp_path / "good_student.py"
    good.write_text(submission_source(AFFINE))
    # cpu_s ends the busy loop of hang.py; timeout_s is far above what the others need, however busy
    # the machine is
    limits = Limits(timeout_s=60, cpu_s=5, memory_mb=1024)
    report = grade([*hostile, good], [AFFINE], limits=limits, jobs=2)
    by_name = {g.submission: g for g in report.grades}
    assert by_name["good_student"].score == AFFINE.points
    assert by_name["hang"].score == 0 and report.problem("hang") == "timed out (limit 5 s of CPU time)"
    assert "crashed" in report.problem("segfault")
    assert "torch" in report.problem("imports_torch") and by_name["imports_torch"].score == 0
    assert "SyntaxError" in report.problem("syntax_error")
    assert by_name["eats_memory"].score < AFFINE.points
    assert 0 <= by_name["wrong_types"].score < AFFINE.points


def test_grading_is_deterministic_for_a_seed(mistake_files):
    path = next(p for m, p in mistake_files if m.name == "dw_transposed" and m.exercise == "affine")
    first, again = (grade([path], [AFFINE], seed=3).grades[0] for _ in range(2))
    assert (first.score, first.passed, first.diagnosis) == (again.score, again.passed, again.diagnosis)


def test_gradescope_results_follow_the_documented_format(mistake_files, tmp_path):
    paths = [p for m, p in mistake_files if m.exercise == "affine"][:2]
    report = grade(paths, [AFFINE])
    for submission in report.totals():
        results = gradescope_results(report, submission)
        assert set(results) >= {"score", "execution_time", "output", "output_format", "visibility", "tests"}
        assert results["output_format"] in {"text", "html", "simple_format", "md", "ansi"}
        assert results["visibility"] in {"hidden", "after_due_date", "after_published", "visible"}
        for test in results["tests"]:
            assert set(test) >= {"name", "score", "max_score", "status", "output"}
            assert test["status"] in {"passed", "failed"}
            assert 0 <= test["score"] <= test["max_score"]
        assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))
        json.dumps(results, allow_nan=False)


def test_junit_xml_parses_with_one_case_per_exercise_and_failures_with_hints(mistake_files):
    paths = [p for m, p in mistake_files if m.exercise == "affine"][:3]
    report = grade(paths, [AFFINE])
    root = ElementTree.fromstring(junit_xml(report))
    suites = root.findall("testsuite")
    assert len(suites) == 3
    for suite in suites:
        cases = suite.findall("testcase")
        assert len(cases) == 1 and cases[0].get("name") == "affine"
        failures = cases[0].findall("failure")
        assert int(suite.get("failures")) == len(failures)
        if failures:
            assert "Hint:" in failures[0].text


def test_cli_gate_exit_codes(complete_solution, mistake_files, tmp_path, capsys):
    solution = tmp_path / "affine_solution.py"
    solution.write_text(submission_source(AFFINE))
    assert main(["grade", str(solution), "--exercises", "affine"]) == 0
    buggy = next(p for m, p in mistake_files if m.name == "dw_transposed" and m.exercise == "affine")
    assert main(["grade", str(buggy), "--exercises", "affine"]) == 1
    assert main(["grade", str(buggy), "--exercises", "affine", "--min-score", "0.5"]) == 0
    assert main(["grade", str(buggy), "--exercises", "nope"]) == 2
    assert main(["grade", str(tmp_path / "missing.py")]) == 2
    assert main(["grade", str(buggy), "--min-score", "2"]) == 2
    capsys.readouterr()


def test_outputs_are_written_into_the_out_folder(mistake_files, tmp_path):
    out = tmp_path / "graded"
    paths = [p for m, p in mistake_files if m.exercise == "relu"]
    assert main(["grade", *map(str, paths), "--exercises", "relu", "--out", str(out)]) == 1
    import pandas as pd

    scores = pd.read_csv(out / "scores.csv")
    assert set(scores.exercise) == {"relu", "TOTAL"}
    assert len(list((out / "gradescope").glob("*.json"))) == len(paths)
    ElementTree.parse(out / "junit.xml")
    assert not any(p.name.startswith(".") for p in out.rglob("*"))  # no temporary files left behind
    shutil.rmtree(out)


def test_nothing_for_nothing_none_or_zeros_score_zero():
    report = grade([HOSTILE / "returns_none.py", HOSTILE / "returns_zeros.py"], [AFFINE])
    for g in report.grades:
        assert g.score == 0 and g.passed == 0, (g.submission, g.passed, g.total)
        assert any(r.message.startswith("no credit for mutation") for r in g.rows)


def test_one_student_cannot_break_the_report_for_the_class(tmp_path):
    good = tmp_path / "good_student.py"
    good.write_text(submission_source(AFFINE))
    names = ["nan_clock.py", "control_characters.py", "deep_nesting.py"]
    out = tmp_path / "out"
    # no --exercises: every source is parsed to find the exercises, the 20,000-deep one included
    code = main(["grade", *(str(HOSTILE / n) for n in names), str(good), "--out", str(out), "--jobs", "2"])
    assert code == 1
    root = ElementTree.parse(out / "junit.xml").getroot()
    assert len(root.findall("testsuite")) == 4
    import pandas as pd

    scores = pd.read_csv(out / "scores.csv").set_index(["submission", "exercise"])
    assert scores.loc[("good_student", "affine"), "score"] == AFFINE.points
    assert scores.loc[("nan_clock", "affine"), "score"] == AFFINE.points  # its NaN clock changed nothing
    assert scores.loc[("deep_nesting", "TOTAL"), "message"].startswith(
        "could not be imported: deep_nesting.py"
    )
    for name in ("good_student", "nan_clock", "control_characters", "deep_nesting"):
        results = json.loads((out / "gradescope" / f"{name}.json").read_text())
        json.dumps(results, allow_nan=False)
        assert "Sandbox: bubblewrap" in results["output"]
    assert "broken??????[31m" in (out / "junit.xml").read_text()


def test_scores_csv_shows_a_students_text_as_text_never_as_a_formula_or_a_control_sequence(tmp_path):
    formula = tmp_path / "=HYPERLINK(1).py"  # a file name the student chose
    formula.write_text(submission_source(AFFINE))
    out = tmp_path / "out"
    hostile = HOSTILE / "control_characters.py"
    assert main(["grade", str(formula), str(hostile), "--exercises", "affine", "--out", str(out)]) == 1
    text = (out / "scores.csv").read_text()
    assert "\x1b" not in text and "\x07" not in text  # pandas 3's str columns are cleaned too
    import pandas as pd

    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert set(scores.submission) == {"'=HYPERLINK(1)", "control_characters"}
    assert not scores.map(lambda v: str(v)[:1] in ("=", "+", "@")).any().any()
