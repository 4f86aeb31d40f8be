"""Reports: what a person sees in the HTML, what a tool reads back from CSV/JSON, and atomic writes."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import math
import os
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

import checker as bc
from checker import plots, report
from checker.oracles import finite_diff
from checker.results import CheckResult, FunctionSummary, Report
from tests.conftest import affine_forward

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WHEN = dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.timezone.utc)


def buggy_affine_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, (x.T @ dout).T, dout  # dw transposed, db not summed


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward_times_x(dout, x):
    return dout * x * (x > 0)


@pytest.fixture(scope="module")
def buggy_report() -> Report:
    affine = bc.register(
        "report_buggy_affine",
        forward=affine_forward,
        backward=buggy_affine_backward,
        inputs={"x": "N,D", "w": "D,M", "b": "M"},
        torch_forward=lambda x, w, b: x @ w + b,
    )
    relu = bc.register(
        "report_buggy_relu", forward=relu_forward, backward=relu_backward_times_x, inputs={"x": "N,D"}
    )
    return bc.run([affine, relu], cases=3, oracles=["torch", "fd"])


@pytest.fixture(scope="module")
def good_report() -> Report:
    good = bc.register(
        "report_good_relu",
        forward=relu_forward,
        backward=lambda dout, x: dout * (x > 0),
        inputs={"x": "N,D"},
    )
    return bc.check(good, cases=2, oracles=["fd"])


class Page(HTMLParser):
    """The parts of an HTML page the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.sections: dict[str, list[str]] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._section: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "section":
            self._section = attributes.get("id", "")
            self.sections[self._section] = []
        elif tag == "table":
            self._table = attributes.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._section is not None:
            self.sections[self._section].append(data)
        if self._cell is not None:
            self._cell.append(data)

    def section_text(self, prefix: str) -> str:
        return " ".join(" ".join(v) for k, v in self.sections.items() if k.startswith("fn-") and prefix in k)

    def images(self) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == "img"]


def decoded_png(src: str) -> bytes:
    assert src.startswith("data:image/png;base64,"), src[:40]
    return base64.b64decode(src.split(",", 1)[1], validate=True)


def test_html_report_of_a_buggy_module_shows_its_diagnosis_and_heatmaps_offline(buggy_report, tmp_path):
    path = buggy_report.write(tmp_path / "run.html")
    text = path.read_text(encoding="utf-8")
    page = Page(text)

    summary = page.tables["T_summary"]
    assert summary[0][:2] == ["function", "status"]
    statuses = {row[0]: row[1] for row in summary[1:]}
    assert statuses == {"report_buggy_affine": "fail", "report_buggy_relu": "fail"}
    assert "#T_summary" in text  # the Styler's colours, under the fixed table id

    affine = page.section_text("report_buggy_affine")
    assert "transposed" in affine and "dw is transposed" in affine
    assert "unreduced_broadcast" in affine or "keepdims" in affine
    assert "backprop-check run" in affine and "--only report_buggy_affine" in affine
    assert "failing checks" in affine

    images = page.images()
    assert images, "no pictures in the report"
    for image in images:
        png = decoded_png(image["src"])
        assert png.startswith(PNG_SIGNATURE)
        assert plots_image_shape(png)[0] > 50
    assert any("expected, yours, difference" in image["alt"] for image in images)

    # Self-contained: nothing is fetched from elsewhere.
    for tag, attributes in page.tags:
        assert tag not in ("link", "script", "iframe"), tag
        for key in ("src", "href"):
            value = attributes.get(key, "")
            assert not value.lower().startswith(("http:", "https:", "//")), (tag, value)
    assert "@import" not in text and "url(http" not in text


def plots_image_shape(png: bytes) -> tuple[int, ...]:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png").shape


def test_pictures_are_capped_per_function(buggy_report):
    def heatmaps(page: Page) -> int:
        return sum("heatmaps" in i["alt"] for i in page.images())

    assert 2 < heatmaps(Page(report.render_html(buggy_report))) <= 2 * 3
    assert heatmaps(Page(report.render_html(buggy_report, pictures=1))) == 2  # one per failing function


def test_correct_module_report_has_no_failure_section(good_report):
    page = Page(report.render_html(good_report))
    assert not page.sections
    assert not page.images()
    assert [row[:2] for row in page.tables["T_summary"][1:]] == [["report_good_relu", "pass"]]
    assert "1 function passed" in "".join(page.text)


def test_notebook_fragment_has_the_summary_the_diagnosis_and_pictures(buggy_report):
    fragment = buggy_report._repr_html_()
    assert "<html" not in fragment and "<body" not in fragment
    page = Page(fragment)
    assert "T_summary" in page.tables
    assert "dw is transposed" in page.section_text("report_buggy_affine")
    assert page.images()


def test_html_is_reproducible_given_the_date(buggy_report):
    assert report.render_html(buggy_report, generated=WHEN) == report.render_html(
        buggy_report, generated=WHEN
    )


# ---------------------------------------------------------------------------------------------
# Pictures


def test_as_matrix_lays_out_vectors_as_a_row_and_conv_batches_as_whole_tiles():
    assert plots.as_matrix(np.array(2.0))[0].shape == (1, 1)
    assert plots.as_matrix(np.arange(5.0))[0].shape == (1, 5)
    stacked, tile = plots.as_matrix(np.arange(24.0).reshape(2, 3, 4))
    assert stacked.shape == (6, 4) and tile == (3, 4)
    batch = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    grid, tile = plots.as_matrix(batch)
    assert grid.shape == (8, 15) and tile == (4, 5)
    np.testing.assert_array_equal(grid[4:8, 10:15], batch[1, 2])


def test_gradient_figure_draws_same_and_different_shapes_and_non_finite_values():
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((3, 4))
    for actual in (expected.T.copy(), np.where(expected > 0, np.nan, expected), np.ones((2, 3, 4))):
        png = plots.gradient_figure(expected, actual, label="dw")
        assert png.startswith(PNG_SIGNATURE)
    same = plots_image_shape(plots.gradient_figure(expected, expected + 1, label="dw"))
    different = plots_image_shape(plots.gradient_figure(expected, expected.T.copy(), label="dw"))
    assert same[1] > different[1]  # the difference panel is drawn only when the shapes agree


def test_step_curve_dips_for_a_right_gradient_and_stays_flat_for_a_wrong_one():
    x = np.random.default_rng(1).standard_normal((3, 4))

    def objective(values):
        return float(np.sum(np.tanh(values["x"])))

    right = 1 - np.tanh(x) ** 2
    _, good = finite_diff.step_curve(objective, {"x": x}, "x", right)
    _, bad = finite_diff.step_curve(objective, {"x": x}, "x", right * 1.5)
    assert good.min() < 1e-8
    v = np.random.default_rng(0).standard_normal(x.shape)  # step_curve's default direction
    floor = abs(np.sum(0.5 * right * v)) / np.linalg.norm(v)  # the wrong gradient's own error along v
    np.testing.assert_allclose(np.median(bad), floor, rtol=1e-3)
    assert bad.min() > 0.9 * floor
    png = plots.step_curve_figure(
        *finite_diff.step_curve(objective, {"x": x}, "x", right), name="x", tolerance=1e-6
    )
    assert png.startswith(PNG_SIGNATURE)


# ---------------------------------------------------------------------------------------------
# Formats for tools: full precision, explicit NaN / inf, round trips

TRICKY = 'a "quoted", comma | pipe\nand a newline'


def synthetic_report(step_curve: bool = False) -> Report:
    expected = np.arange(6.0).reshape(2, 3)
    evidence = {"actual": expected.T.copy(), "expected": expected}
    if step_curve:
        evidence["step_curve"] = (finite_diff.STEPS, np.full(finite_diff.STEPS.shape, 0.5))
    records = [
        CheckResult("grad_fd", "w", "pass", max_abs_err=1.2e-12, function="f", seed=7, seconds=3.4e-300),
        CheckResult("finite", "x", "fail", TRICKY, "nonfinite", math.inf, -math.inf, function="f", case=1),
        CheckResult(
            "grad_fd", "w", "fail", "dw is transposed", "transposed", 5.0, 1.0, "(2, 3)", "(3, 2)",
            "finite_diff(full)", "f", 2, "edge", "N=1, D=3", 7, 0.1, evidence,
        ),
    ]  # fmt: skip
    summary = FunctionSummary(
        "f", "fail", 3, 2, 3, 2, "transposed", 5.0, 0.5, "fails only when N = 1", "N=1", "cmd"
    )
    return Report(records, [summary], {"seed": 7, "cases": 3, "mode": "auto", "targets": ["mod"]})


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_csv_and_json_round_trip_at_full_precision_with_nan_and_inf(tmp_path, suffix):
    source = synthetic_report()
    path = source.write(tmp_path / f"run{suffix}")
    back = report.read_frame(path)
    pd.testing.assert_frame_equal(back, source.frame)
    assert back.max_abs_err[0] == 1.2e-12 and back.seconds[0] == 3.4e-300 and back.seconds[2] == 0.1
    assert math.isnan(back.max_rel_err[0])
    assert back.max_abs_err[1] == math.inf and back.max_rel_err[1] == -math.inf
    assert back.message[1] == TRICKY


def test_json_spells_out_non_finite_floats_and_is_strict_json(tmp_path):
    path = synthetic_report().write(tmp_path / "run.json")
    text = path.read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["records"][0]["max_abs_err"] == 1.2e-12
    assert data["records"][1]["max_abs_err"] == "inf" and data["records"][1]["max_rel_err"] == "-inf"
    assert data["records"][0]["max_rel_err"] == "nan" and data["records"][0]["seed"] == 7
    assert data["summary"][0]["shape_pattern"] == "fails only when N = 1"
    assert data["settings"]["seed"] == 7


def test_markdown_tables_keep_their_columns_and_the_failure_reads_well(tmp_path):
    path = synthetic_report().write(tmp_path / "run.md")
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "## backprop-check: 1 of 1 functions failed"
    tables = [line for line in lines if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.replace("\\|", "\0").strip("|").split("|")]

    widths = {len(cells(line)) for line in tables[:3]}
    assert widths == {6}
    rows = [line for line in tables if "finite" in line or "grad_fd" in line]
    assert {len(cells(line)) for line in rows} == {7}  # the pipe and newline in a message are escaped
    assert "| `f` | ❌ fail | 2 / 3 |" in text
    assert "**`transposed`**: dw is transposed" in text
    assert "smallest failing dims: `N=1`" in text and "```sh\ncmd\n```" in text


def test_html_summary_round_trips_and_draws_a_step_curve_from_evidence():
    source = synthetic_report(step_curve=True)
    page = Page(report.render_html(source, generated=WHEN))
    header, *rows = page.tables["T_summary"]
    assert header[:3] == ["function", "status", "failing cases"]
    assert rows == [["f", "fail", "2 / 3", "2 / 3", "transposed", "5", "fails only when N = 1", "0.50"]]
    alts = [i["alt"] for i in page.images()]
    assert any("heatmaps of dw" in a for a in alts)
    assert any("finite-difference error against step size for dw" in a for a in alts)
    assert "2025-01-02 03:04 UTC" in "".join(page.text)


# ---------------------------------------------------------------------------------------------
# Atomic writes


def test_an_exception_while_rendering_keeps_the_older_report_and_leaves_no_partial_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "run.html"
    path.write_text("older report")

    def broken(*args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(report, "render_html", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        synthetic_report().write(path)
    assert path.read_text() == "older report"
    assert os.listdir(tmp_path) == ["run.html"]


def test_an_exception_while_writing_keeps_the_older_report_and_removes_the_temporary_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "run.csv"
    path.write_text("older report")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        synthetic_report().write(path)
    assert path.read_text() == "older report"
    assert os.listdir(tmp_path) == ["run.csv"]


def test_a_written_report_replaces_the_old_one_with_ordinary_permissions(tmp_path):
    path = tmp_path / "deep" / "run.md"
    synthetic_report().write(path)
    synthetic_report().write(path)
    assert path.read_text().startswith("## backprop-check")
    assert os.listdir(path.parent) == ["run.md"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_an_unknown_extension_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="extension must be one of"):
        synthetic_report().write(tmp_path / "run.xlsx")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# What a person reads first: failing functions first, what ran, print(report)


def two_function_report() -> Report:
    """A passing function checked first, a failing one second (7 cases: one of them shrunk)."""
    failing = synthetic_report()
    passing = FunctionSummary("g_passes", "pass", 6, 0, 12, 0, "", 1e-12, 0.1)
    summary = dataclasses.replace(failing.summaries[0], cases=7)
    return Report(
        failing.records, [passing, summary], {"seed": 7, "cases": None, "mode": "auto", "targets": ["mod"]}
    )


def test_failing_functions_come_first_in_the_html_and_markdown_tables():
    source = two_function_report()
    page = Page(report.render_html(source, generated=WHEN))
    _, *rows = page.tables["T_summary"]
    assert [r[0] for r in rows] == ["f", "g_passes"]
    markdown = report.render_markdown(source)
    assert markdown.index("| `f` |") < markdown.index("| `g_passes` |")
    assert report.render_markdown(source).count("### ") == 1  # a section for the failing one only


def test_the_header_says_how_many_cases_ran_not_auto():
    source = two_function_report()
    markdown = report.render_markdown(source)
    assert "cases auto" not in markdown
    assert "6 to 7 cases per function (a shrunk case is one more)" in markdown
    uniform = Report(source.records, [source.summaries[0]], source.settings)
    assert "seed 7 · 6 cases per function · mode auto" in report.render_markdown(uniform)
    assert "6 cases per function" in "".join(Page(report.render_html(uniform, generated=WHEN)).text)


def test_print_shows_the_summary_table_and_the_failure_not_a_repr(capsys):
    source = two_function_report()
    print(source)
    out = capsys.readouterr().out
    assert "<Report" not in out
    lines = out.splitlines()
    header = next(line for line in lines if "function" in line and "status" in line)
    assert "diagnoses" in header and "worst abs err" in header
    assert lines.index(next(line for line in lines if " f " in line)) < lines.index(
        next(line for line in lines if "g_passes" in line)
    )
    assert any(
        line.strip().startswith("smallest failing dims:") and line.rstrip().endswith("N=1") for line in lines
    )
    assert "1 passed, 1 failed: f" in out
    assert repr(source).startswith("<Report: 2 functions, 1 failing")  # the REPL's one-liner stays short
