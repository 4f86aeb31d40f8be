"""The presentation room: the words every door shares, one set of labels, option texts, shape advice."""

from __future__ import annotations

import numpy as np
import pytest

import checker as bc
from checker.compare import EXACT, compare_arrays
from checker.presentation import options
from checker.presentation.advice import separating_rule, shape_advice
from checker.presentation.failure import failure_text
from checker.presentation.html_page import render_html
from checker.presentation.markdown_page import render_markdown
from checker.presentation.summary import LABELS, function_facts
from checker.presentation.terminal import render_text
from checker.presentation.words import gradient_name, mismatch_text
from tests.conftest import affine_forward


def test_mismatch_text_speaks_numpy_testing():
    comparison = compare_arrays(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0]), EXACT)
    assert mismatch_text(comparison) == (
        "Mismatched elements: 1 / 4 (25%), Max absolute difference: 1, Max relative difference: 0.111"
    )
    assert mismatch_text(comparison, relative=False) == (
        "Mismatched elements: 1 / 4 (25%), Max absolute difference: 1"
    )


def test_the_checks_mismatch_message_is_the_one_mismatch_text():
    """The runner's rows already use these words: switching a call site to mismatch_text keeps them."""

    def offset_backward(dout, cache):  # a mistake no rule explains: the message is the mismatch itself
        x, w, _ = cache
        return (
            dout @ w.T,
            x.T @ dout + 0.37 * np.sin(np.arange(w.size) ** 2).reshape(w.shape),
            dout.sum(axis=0),
        )

    target = bc.register(
        "mismatch_words",
        forward=affine_forward,
        backward=offset_backward,
        inputs={"x": "N,D", "w": "D,M", "b": "M"},
    )
    rows = bc.check(target, cases=1, oracles=["autograd"], dims={"N": 2, "D": 3, "M": 4}).failures
    row = next(r for r in rows if r.check == "grad_autograd" and r.target == "w")
    comparison = compare_arrays(row.evidence["actual"], row.evidence["expected"], EXACT)
    assert f"{gradient_name('w')} differs from torch_numpy: {mismatch_text(comparison)}" in row.message


def test_a_gradient_is_named_d_and_its_input():
    assert gradient_name("w") == "dw" and gradient_name("gamma") == "dgamma"


# --- one set of labels for every door --------------------------------------------------------------------


@pytest.fixture(scope="module")
def buggy_report():
    def backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, x.T @ dout, dout  # db not summed over the batch

    target = bc.register(
        "labels_affine", forward=affine_forward, backward=backward, inputs={"x": "N,D", "w": "D,M", "b": "M"}
    )
    return bc.check(target, cases=3)


def test_every_door_shows_the_same_facts_under_the_same_labels(buggy_report):
    summary = buggy_report.summaries[0]
    facts = function_facts(summary, buggy_report.records)
    assert {"shape_pattern", "shrunk_dims", "reproduce"} <= {f.key for f in facts}
    doors = {
        "terminal": render_text(buggy_report),
        "pytest": failure_text(summary, buggy_report.records, 0),
        "markdown": render_markdown(buggy_report),
        "html": render_html(buggy_report),
    }
    for door, text in doors.items():
        for fact in facts:
            assert fact.label in text.lower(), (door, fact.label)  # a heading may capitalise it
            assert fact.text.replace(">", "&gt;") in text or fact.text in text, (door, fact.text)
        assert "shrunk dims" not in text and "shape pattern" not in text, door
    assert set(LABELS.values()) >= {"note", "shapes", "smallest failing dims", "reproduce", "advice"}


def test_a_note_is_shown_by_every_door():
    from checker.results import CheckResult, FunctionSummary, Report

    summary = FunctionSummary("noted", "fail", 2, 1, 4, 1, "scaled", 1.0, 0.1, notes="scaled at N=1 only")
    rows = [CheckResult("grad_fd", "w", "fail", "dw is off", "scaled", function="noted", dims="N=1, D=2")]
    report = Report(rows, [summary], {"targets": ["m"]})
    for text in (
        render_text(report),
        failure_text(summary, rows, 0),
        render_markdown(report),
        render_html(report),
    ):
        assert "note" in text and "scaled at N=1 only" in text


# --- option texts, shared by the CLI and pytest -----------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "args", "message"),
    [
        (options.parse_tolerance, ("rtol=abc", "--tol"), "--tol 'rtol=abc': expected KEY=NUMBER pairs"),
        (options.parse_tolerance, ("tolerance=1", "--tol"), "unknown keys ['tolerance']"),
        (options.parse_tolerance, ("rtol=-1", "--tol"), "rtol=-1.0 must be a finite number >= 0"),
        (options.parse_dims, ("N:3", "--dims"), "--dims 'N:3': expected SYMBOL=SIZE pairs"),
        (options.parse_dims, ("N=0", "--dims"), "(sizes >= 1)"),
        (options.parse_names, ("fd,jax", "--oracles", ("fd", "torch")), "choose from fd, torch"),
        (
            options.parse_whole_number,
            ("many", "backprop_cases"),
            "backprop_cases='many': expected a whole number",
        ),
        (options.parse_whole_number, ("0", "--cases", 1), "--cases=0: must be a whole number >= 1"),
        (options.parse_seconds, ("0",), "'0' must be a finite number of seconds > 0"),
        (options.parse_seconds, ("inf",), "'inf' must be a finite number"),
        (options.report_format, ("run.xlsx",), "the extension must be one of .csv, .json, .md, .html"),
    ],
)
def test_a_bad_option_text_is_an_option_error_that_quotes_it(parse, args, message):
    with pytest.raises(bc.OptionError) as err:
        parse(*args)
    assert message in str(err.value)


def test_good_option_texts_are_read():
    assert options.parse_tolerance("rtol=1e-6, fd_rtol=1e-4") == {"rtol": 1e-6, "fd_rtol": 1e-4}
    assert options.parse_dims("N=1,D=3") == {"N": 1, "D": 3}
    assert options.parse_names("fd, torch", "--oracles", ("fd", "torch", "autograd")) == ["fd", "torch"]
    assert options.parse_seconds("2.5") == 2.5
    assert [options.report_format(p) for p in ("a.CSV", "b.json", "c.md", "d.htm")] == [
        "csv",
        "json",
        "markdown",
        "html",
    ]


# --- code that raised at some shapes only ----------------------------------------------------------------


def test_the_rule_that_separates_failing_from_passing_dims_is_found_simplest_first():
    odd = [{"N": 2, "H": 1}, {"N": 3, "H": 3}, {"N": 1, "H": 5}]
    even = [{"N": 2, "H": 2}, {"N": 1, "H": 4}]
    assert separating_rule(odd, even) == ('d["H"] % 2 == 0', ("H",))
    stride = [{"H": 5, "S": 2}, {"H": 6, "S": 4}, {"H": 4, "S": 3}]
    divides = [{"H": 4, "S": 2}, {"H": 9, "S": 3}, {"H": 6, "S": 3}, {"H": 8, "S": 4}]
    assert separating_rule(stride, divides) == ('d["H"] % d["S"] == 0', ("H", "S"))
    assert (
        separating_rule([{"H": 2}, {"H": 3}], [{"H": 4}, {"H": 1}]) is None
    )  # no simple rule: none invented


def pool_forward(x):
    n, h = x.shape
    out = x.reshape(n, h // 2, 2).max(axis=2)
    return out, (x, out)


def pool_backward(dout, cache):
    x, out = cache
    n, h = x.shape
    return ((x.reshape(n, h // 2, 2) == out[:, :, None]) * dout[:, :, None]).reshape(n, h)


def test_advice_names_a_constraint_when_the_code_raised_at_some_shapes_only():
    target = bc.register("advice_pool", forward=pool_forward, backward=pool_backward, inputs={"x": "N,H"})
    report = bc.check(target, cases=8, shrink=False)
    advice = shape_advice(report.summaries[0], report.records)
    assert advice.startswith("your code raised at some shapes only (fails at H = ")
    assert 'constraint=lambda d: d["H"] % 2 == 0' in advice
    fixed = bc.register(
        "advice_pool_fixed",
        forward=pool_forward,
        backward=pool_backward,
        inputs={"x": "N,H"},
        constraint=lambda d: d["H"] % 2 == 0,
    )
    assert bc.check(fixed, cases=8).passed  # the advice, followed, is enough


def test_no_advice_for_wrong_values_or_for_code_that_raises_everywhere(buggy_report):
    assert shape_advice(buggy_report.summaries[0], buggy_report.records) == ""

    def always_raises(x):
        raise ValueError("not yet")

    target = bc.register("advice_raises", forward=always_raises, backward=pool_backward, inputs={"x": "N,H"})
    report = bc.check(target, cases=3, shrink=False)
    assert report.summaries[0].status == "error"
    assert shape_advice(report.summaries[0], report.records) == ""


def test_no_advice_when_a_case_timed_out():
    from checker.results import CheckResult, FunctionSummary

    summary = FunctionSummary("hangs", "error", 2, 1, 3, 1, "", float("nan"), 1.0)
    rows = [
        CheckResult("call", "timeout", "error", "did not finish", function="hangs", case=0, dims="N=3"),
        CheckResult("grad_fd", "x", "pass", function="hangs", case=1, dims="N=2"),
    ]
    assert shape_advice(summary, rows) == ""
    raised = [CheckResult("call", "f", "error", "ValueError", function="hangs", case=0, dims="N=3"), rows[1]]
    assert shape_advice(summary, raised).startswith("your code raised at some shapes only (fails at N = 3")
