"""Where the backward goes wrong, in every door: the "where" line (CLI, pytest failure text, reports),
the HTML "where" section (the steps in order, the first wrong one marked, its heatmap), the Markdown
step list, and the evidence a ``localize`` row carries for them (to the xdist controller too).

One report is shared: a staged batch norm with a planted sign slip in ``dsqrtvar`` (localised), a
one-expression backward with a wrong gradient (not localisable: the reason is told) and a correct
function (nothing is told).
"""

from __future__ import annotations

import base64
import inspect
import json
import textwrap
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest

import checker as bc
from checker.cli import main
from checker.localize import Localization, StepVerdict, localization_rows
from checker.localize.rows import MAX_PICTURED, MAX_STEPS
from checker.presentation.failure import failure_text
from checker.presentation.html_page import render_html
from checker.presentation.markdown_page import render_markdown
from checker.presentation.summary import function_facts
from checker.presentation.terminal import render_text
from checker.presentation.where import shown_steps, where_row
from checker.pytest_payload import from_payload, to_payload
from checker.results import COLUMNS, Report, records_to_frame
from reference_impls.mistakes import staged_norms

PLANTED = staged_norms.batchnorm_staged_backward_sqrtvar_sign
STATEMENT = "dsqrtvar = 1.0 / sqrtvar**2 * divar"


def planted_location() -> str:
    lines, first = inspect.getsourcelines(PLANTED)
    offset = next(i for i, line in enumerate(lines) if line.strip() == STATEMENT)
    return f"staged_norms.py:{first + offset}"


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward_one_expression(dout, cache):
    x, w, _ = cache
    return dout @ w.T, 2 * x.T @ dout, dout.sum(axis=0)  # dw doubled, no step named


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, x):
    return dout * (x > 0)


@pytest.fixture(scope="module")
def report() -> Report:
    bank = bc.get_target("batchnorm_staged", module="reference_impls.staged")
    buggy = bc.variant(bank, {"batchnorm_staged_backward": PLANTED})
    one_expression = bc.register(
        "where_one_expression",
        forward=affine_forward,
        backward=affine_backward_one_expression,
        inputs={"x": "N,D", "w": "D,M", "b": "M"},
    )
    good = bc.register("where_good_relu", forward=relu_forward, backward=relu_backward, inputs={"x": "N,D"})
    return bc.run([buggy, one_expression, good], cases=2)


def summary_of(report: Report, function: str) -> bc.FunctionSummary:
    return next(s for s in report.summaries if s.function == function)


def records_of(report: Report, function: str) -> list[bc.CheckResult]:
    return [r for r in report.records if r.function == function]


# --- the evidence of a localize row ----------------------------------------------------------------


def test_a_localize_row_carries_the_steps_and_the_wrong_steps_arrays_as_evidence_only(report):
    rows = [r for r in records_of(report, "batchnorm_staged") if r.check == "localize"]
    assert rows and {(r.first_wrong, r.location) for r in rows} == {("dsqrtvar", planted_location())}
    for row in rows:
        steps = shown_steps(row)
        verdicts = {s.name: s.verdict for s in steps}
        assert verdicts["dsqrtvar"] == "first_wrong"
        assert all(verdicts[n] == "right" for n in ("dgammax", "dxhat", "divar"))
        first = next(s for s in steps if s.verdict == "first_wrong")
        assert (first.source, first.location, first.matches) == (STATEMENT, planted_location(), "sqrtvar")
        assert first.diagnosis == "sign_flipped" and "wrong sign" in first.message
        # the step's own value against the exact gradient of sqrtvar: the planted slip is a sign
        actual, expected = row.evidence["actual"], row.evidence["expected"]
        assert actual.shape == expected.shape and str(actual.shape) == row.actual_shape
        np.testing.assert_allclose(actual, -expected, rtol=1e-9, atol=1e-12)
        assert row.evidence["unmatched"] == ["dxmu1", "dxmu2"]
    assert list(records_to_frame(rows).columns) == list(COLUMNS)  # no evidence in the frame


def _verdict(name: str, line: int, right: bool, **fields) -> StepVerdict:
    return StepVerdict(name, name[1:], "/tmp/long.py", line, f"{name} = ...", right, **fields)


def test_the_step_list_is_capped_around_the_first_wrong_step_and_big_arrays_are_left_out():
    steps = tuple(_verdict(f"dh{i}", i, right=i < 70, confirmed=i >= 70) for i in range(100))
    big = np.ones(MAX_PICTURED + 1)
    localization = Localization(
        "long", steps=steps, first_wrong=steps[70], gradients=(("x", 70),), arrays=((70, big, -big),)
    )
    (row,) = localization_rows(localization)
    listed = row.evidence["steps"]
    assert len(listed) == MAX_STEPS and row.evidence["steps_left_out"] == 100 - MAX_STEPS
    names = [s["name"] for s in listed]
    assert "dh70" in names and names.index("dh70") > MAX_STEPS // 2  # the right steps before it count most
    assert "dh69" in names and "dh71" in names
    assert "actual" not in row.evidence and "expected" not in row.evidence

    small = replace(localization, steps=steps[:71], arrays=((70, np.ones(3), -np.ones(3)),))
    (row,) = localization_rows(small)
    np.testing.assert_array_equal(row.evidence["expected"], -np.ones(3))


# --- one "where" line in every door ----------------------------------------------------------------


def test_the_where_fact_comes_first_with_the_statement_and_the_diagnosis(report):
    facts = function_facts(summary_of(report, "batchnorm_staged"), records_of(report, "batchnorm_staged"))
    assert facts[0].key == "where" and facts[0].label == "where"
    assert facts[0].text == f"dsqrtvar at {planted_location()}: `{STATEMENT}` (sign_flipped)"


def test_a_function_that_is_not_localised_says_why_and_has_no_where(report):
    summary = summary_of(report, "where_one_expression")
    assert summary.status == "fail" and not summary.where
    facts = {f.key: f.text for f in function_facts(summary, records_of(report, "where_one_expression"))}
    assert "where" not in facts
    assert "not located: the backward has no named intermediate arrays (one expression)" in facts["notes"]


def test_a_passing_function_tells_nothing(report):
    summary = summary_of(report, "where_good_relu")
    assert summary.status == "pass"
    assert function_facts(summary, records_of(report, "where_good_relu")) == []
    assert not [r for r in records_of(report, "where_good_relu") if r.check == "localize"]


def test_the_pytest_failure_text_puts_the_located_step_first_and_a_where_line(report):
    text = failure_text(summary_of(report, "batchnorm_staged"), records_of(report, "batchnorm_staged"), 0)
    lines = text.splitlines()
    assert lines[1].startswith("  check localize, gradient dx, diagnosis sign_flipped:")
    assert f"is wrong ({planted_location()}: `{STATEMENT}`)" in lines[2]
    assert "  where:" in text
    where = next(line for line in lines if line.startswith("  where:"))
    assert where.endswith(f"dsqrtvar at {planted_location()}: `{STATEMENT}` (sign_flipped)")

    text = failure_text(
        summary_of(report, "where_one_expression"), records_of(report, "where_one_expression"), 0
    )
    assert "where:" not in text and "not located: the backward has no named intermediate arrays" in text


def test_print_report_shows_the_where_line_under_the_localised_function_only(report):
    text = render_text(report)
    blocks = text.split("\n" + "where_one_expression:")
    assert len(blocks) == 2
    assert "  where:" in blocks[0] and f"dsqrtvar at {planted_location()}: `{STATEMENT}`" in blocks[0]
    assert "where:" not in blocks[1] and "not located:" in blocks[1]


# --- the HTML "where" section ----------------------------------------------------------------------


class WherePage(HTMLParser):
    """Each function section's "where" heading, its step table rows (class, cells) and image alts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.section = ""
        self.headings: dict[str, list[str]] = {}
        self.steps: dict[str, list[tuple[str, list[str]]]] = {}
        self.images: dict[str, list[dict[str, str]]] = {}
        self.links: list[str] = []
        self._in: str | None = None
        self._table = False
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.section = a.get("id", "")
        elif tag == "h3":
            self._in = a.get("id", "")
            self.headings.setdefault(self.section, []).append("")
        elif tag == "table" and "steps" in a.get("class", ""):
            self._table = True
            self.steps[self.section] = []
        elif tag == "tr" and self._table:
            self.steps[self.section].append((a.get("class", ""), []))
        elif tag == "td" and self._table:
            self._cell = []
        elif tag == "img":
            self.images.setdefault(self.section, []).append(a)
        elif tag == "a":
            self.links.append(a.get("href", ""))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = False
        elif tag == "td" and self._cell is not None:
            self.steps[self.section][-1][1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "h3":
            self._in = None
        elif tag == "section":
            self.section = ""

    def handle_data(self, data):
        if self._in is not None:
            self.headings[self.section][-1] += data
        if self._cell is not None:
            self._cell.append(data)


def _section(page: WherePage, function: str) -> str:
    return next(k for k in page.headings if k.endswith(function))


def test_the_html_where_section_lists_the_steps_marks_the_first_wrong_one_and_draws_it(report):
    page = WherePage(render_html(report))
    section = _section(page, "batchnorm_staged")
    assert "Where the backward goes wrong" in page.headings[section]
    assert f"#{section}-where" in page.links  # the where fact links to it
    rows = [(kind, cells) for kind, cells in page.steps[section] if cells]  # (the header has <th>s)
    marked = [(kind, cells[1]) for kind, cells in rows if kind != "why"]
    kinds = [kind for kind, _ in marked]
    assert kinds.count("first_wrong") == 1
    at = kinds.index("first_wrong")
    assert marked[at][1] == "dsqrtvar"
    assert {name for kind, name in marked[:at]} >= {"dgammax", "dxhat", "divar"}
    assert all(kind == "right" for kind, _ in marked[:at])
    first = next(cells for kind, cells in rows if kind == "first_wrong")
    assert first[0] == "✗ first wrong" and first[2] == planted_location() and first[3] == STATEMENT
    why = next(cells for kind, cells in rows if kind == "why")
    assert "sign_flipped" in why[1] and "wrong sign" in why[1]
    (picture,) = [i for i in page.images[section] if i["alt"].startswith("heatmaps of dsqrtvar")]
    png = base64.b64decode(picture["src"].split(",", 1)[1])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_the_html_tells_why_a_function_was_not_localised_and_nothing_for_a_passing_one(report):
    text = render_html(report)
    page = WherePage(text)
    section = _section(page, "where_one_expression")
    assert section not in page.steps
    assert not any("Where the backward" in h for h in page.headings[section])
    assert "not located: the backward has no named intermediate arrays" in text
    assert not any(k.endswith("where_good_relu") for k in page.headings)  # a passing function has no section
    # the generic pictures stay gradients: a step's picture is drawn in its where section only
    others = [
        i["alt"]
        for k, images in page.images.items()
        if k != _section(page, "batchnorm_staged")
        for i in images
    ]
    assert not any("dsqrtvar" in alt for alt in others)


# --- Markdown --------------------------------------------------------------------------------------


def test_markdown_has_the_where_line_and_the_compact_step_list(report):
    text = render_markdown(report)
    bn = text.split("### ❌ `batchnorm_staged`")[1].split("### ")[0]
    assert f"- where: dsqrtvar at {planted_location()}: `{STATEMENT}` (sign_flipped)\n" in bn
    block = bn.split("```text\n")[1].split("\n```")[0].splitlines()
    first = next(line for line in block if line.startswith("✗ first wrong"))
    assert "dsqrtvar" in first and planted_location() in first and first.endswith(STATEMENT)
    assert [line.split()[0] for line in block[: block.index(first)]] == ["✓"] * block.index(first)
    assert any(line.strip().startswith("sign_flipped: ") for line in block)
    assert any(line.startswith("after it: ✗ dvar") for line in block)
    assert "not checked (no forward value has their name): dxmu1, dxmu2" in block

    one = text.split("### ❌ `where_one_expression`")[1].split("### ")[0]
    assert "- where:" not in one and "```text" not in one and "not located:" in one
    assert "### ❌ `where_good_relu`" not in text and "`where_good_relu`" in text


# --- to the xdist controller -----------------------------------------------------------------------


def test_the_where_row_travels_to_the_xdist_controller_with_its_steps_and_arrays(report):
    pending = [(records_of(report, s.function), s) for s in report.summaries]
    payload = json.loads(json.dumps(to_payload(pending)))  # plain data, as execnet and JSON take it
    records, summaries = from_payload(payload)
    travelled = [r for r in records if r.check == "localize" and "steps" in r.evidence]
    assert len(travelled) == 1  # one per localised function: the one its report shows
    shown = where_row(records_of(report, "batchnorm_staged"))
    (row,) = travelled
    assert (row.case, row.target) == (shown.case, shown.target)
    assert shown_steps(row) == shown_steps(shown)
    np.testing.assert_array_equal(row.evidence["actual"], shown.evidence["actual"])
    again = Report(records, summaries, report.settings)
    assert render_html(again, generated=None).count("class='first_wrong'") == 1
    assert render_markdown(again) == render_markdown(report)


# --- the command line ------------------------------------------------------------------------------

MODULE = """
import checker as bc
from reference_impls import staged
from reference_impls.mistakes import staged_norms
from tests.test_where import affine_forward, affine_backward_one_expression, relu_forward, relu_backward

bc.register("bn", forward=staged.batchnorm_staged_forward,
            backward=staged_norms.batchnorm_staged_backward_sqrtvar_sign,
            inputs={"x": "N,D", "gamma": "D", "beta": "D"}, dims={"N": range(2, 7)})
bc.register("one_expression", forward=affine_forward, backward=affine_backward_one_expression,
            inputs={"x": "N,D", "w": "D,M", "b": "M"})
bc.register("good", forward=relu_forward, backward=relu_backward, inputs={"x": "N,D"})
"""


def test_the_cli_prints_where_under_a_localised_function_and_why_not_under_another(tmp_path, capsys):
    path = tmp_path / "where_cli_layers.py"
    path.write_text(textwrap.dedent(MODULE))
    assert main(["run", str(path), "--cases", "2"]) == 1
    lines = capsys.readouterr().out.splitlines()
    bn = next(i for i, line in enumerate(lines) if line.startswith("bn: "))
    one = next(i for i, line in enumerate(lines) if line.startswith("one_expression: "))
    last = next(i for i, line in enumerate(lines) if line.startswith("1 passed, 2 failed: "))
    assert bn < one < last
    assert (
        f"[localize x] dgammax, dxhat, divar are right; dsqrtvar is wrong ({planted_location()}" in lines[bn]
    )
    where = [line for line in lines[bn:one] if line.startswith("  where:")]
    assert len(where) == 1 and where[0].endswith(
        f"dsqrtvar at {planted_location()}: `{STATEMENT}` (sign_flipped)"
    )
    assert not any(line.startswith("  where:") for line in lines[one:last])
    assert any(
        "not located: the backward has no named intermediate arrays" in line for line in lines[one:last]
    )
    assert not any(line.startswith("good: ") for line in lines)
