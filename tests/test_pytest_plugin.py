"""The pytest door: ``--backprop-check`` items, their failure text, options, ini settings, the fixture, xdist."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas  # noqa: F401
import pytest

import checker as bc
from checker import pytest_plugin
from checker.results import COLUMNS
from checker.suite import check_target

# In-process runs inside an xdist worker make pytest-benchmark warn that it is disabled.
pytestmark = pytest.mark.filterwarnings("ignore:Benchmarks are automatically disabled")

GOOD = """
import checker as bc


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def relu_forward(x):
    return x * (x > 0), x


def relu_backward(dout, x):
    return dout * (x > 0)


bc.register("affine", forward=affine_forward, backward=affine_backward, inputs={"x": "N,D", "w": "D,M", "b": "M"})
bc.register("relu", forward=relu_forward, backward=relu_backward, inputs={"x": "N,D"})
"""

BUGGY = """
import checker as bc


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, x.T @ dout, dout  # db not summed over the batch


def affine_t_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)  # dw transposed


bc.register("affine", forward=affine_forward, backward=affine_backward, inputs={"x": "N,D", "w": "D,M", "b": "M"})
bc.register("affine_t", forward=affine_forward, backward=affine_t_backward, inputs={"x": "N,D", "w": "D,M", "b": "M"})
"""

SLIGHTLY_OFF = """
import checker as bc


def scale_forward(x, w):
    return x * w, (x, w)


def scale_backward(dout, cache):
    x, w = cache
    return dout * w * (1 + 1e-3), (dout * x).sum(axis=0)


bc.register("scale", forward=scale_forward, backward=scale_backward, inputs={"x": "N,D", "w": "D"})
"""


@pytest.fixture(scope="module", autouse=True)
def harness_loaded() -> None:
    """Load everything the harness imports lazily (torch, its numpy frontend) before any in-process run.

    pytester restores ``sys.modules`` after each in-process run, and torch cannot be imported twice in
    one process; a module already loaded before the run is kept.
    """
    target = bc.register(
        "plugin_tests_warm_up",
        forward=lambda x: (2 * x, None),
        backward=lambda dout, cache: 2 * dout,
        inputs={"x": "N"},
        torch_forward=lambda x: 2 * x,
        module="tests.test_pytest_plugin",
    )
    check_target(target, cases=1)


def write(pytester: pytest.Pytester, name: str, source: str) -> Path:
    return pytester.makepyfile(**{name: source})


def test_help_lists_the_options_under_their_own_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "backprop-check: verify hand-written numpy backprop:",
            "*--backprop-check=MODULE*",
            "*--backprop-cases=N*",
            "*--backprop-seed=N*",
            "*--backprop-report=PATH*",
            "*--backprop-tol=TOL*",
        ]
    )
    for ini in ("backprop_check_modules (linelist)", "backprop_cases", "backprop_seed", "backprop_report"):
        assert ini in result.stdout.str()


def test_the_plugin_module_imports_only_pytest_and_the_standard_library() -> None:
    tree = ast.parse(Path(pytest_plugin.__file__).read_text())
    imported = []
    for node in tree.body:  # module level only; `if TYPE_CHECKING:` blocks are not executed
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.append(node.module or "")
    roots = {name.split(".")[0] for name in imported}
    assert roots - set(sys.stdlib_module_names) - {"__future__"} == {"pytest"}
    code = "import sys, checker.pytest_plugin; print(sorted({'torch', 'pandas', 'matplotlib', 'numpy', 'hypothesis'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_a_module_by_name_gives_one_item_per_registered_function(pytester: pytest.Pytester) -> None:
    write(pytester, "named_layers", GOOD)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("--backprop-check", "named_layers", "--backprop-cases", "2", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "backprop-check: seed=0, cases=2, modules: named_layers",
            "*test_plain.py::test_plain PASSED*",
            "*named_layers::backprop[[]affine[]] PASSED*",
            "*named_layers::backprop[[]relu[]] PASSED*",
        ]
    )


def test_a_py_path_is_resolved_against_the_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "path_layers.py").write_text(GOOD)
    (pytester.path / "elsewhere").mkdir()
    monkeypatch.chdir(pytester.path / "elsewhere")
    result = pytester.runpytest("--backprop-check", "src/path_layers.py", "--backprop-cases", "2", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*src/path_layers.py::backprop[[]affine[]] PASSED*"])


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (None, "no module named 'missing_layers'"),
        ("raise RuntimeError('needs a GPU')\n", "RuntimeError: needs a GPU"),
        ("def broken(:\n", "SyntaxError"),
        ("import checker as bc\n", "registers no functions"),
    ],
    ids=["missing", "raises", "syntax", "empty"],
)
def test_a_module_that_cannot_be_imported_is_a_collection_error_with_the_reason(
    pytester: pytest.Pytester, source: str | None, reason: str
) -> None:
    if source is not None:
        write(pytester, "missing_layers", source)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("--backprop-check", "missing_layers")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*ERROR collecting missing_layers*", f"*{reason}*", "*1 error during collection*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_failing_function_prints_the_harness_report_not_a_traceback(pytester: pytest.Pytester) -> None:
    write(pytester, "buggy_layers", BUGGY)
    result = pytester.runpytest("--backprop-check", "buggy_layers", "--backprop-cases", "3")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ buggy_layers.backprop[[]affine[]] _*",
            "affine: * cases failed; diagnosis: *unreduced_broadcast* (seed 0)",
            "  check shape, gradient db, diagnosis unreduced_broadcast:",
            "    db has shape (2, 4) but b has shape (4,)*sum the gradient over axis 0",
            "    failing dims: N=2, D=3, M=4 (baseline)*",
            "  shapes:                fails at every shape",
            "  smallest failing dims: N=1, D=1, M=1",
            "  reproduce:             backprop-check run buggy_layers --only affine --seed 0 --dims N=1,D=1,M=1",
            '  rerun:                 pytest --backprop-check buggy_layers --backprop-seed 0 --backprop-cases 3 -k "backprop[[]affine[]]"',
            "*_ buggy_layers.backprop[[]affine_t[]] _*",
            "affine_t: * cases failed; diagnosis: transposed*",
            "  check shape, gradient dw, diagnosis transposed:",
            "    dw is transposed*",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED buggy_layers::backprop[[]affine[]] - affine: * cases failed*"])
    output = result.stdout.str()
    assert "Traceback" not in output and "checker/suite.py" not in output


def test_the_terminal_summary_has_one_line_per_function(pytester: pytest.Pytester) -> None:
    write(pytester, "summary_good", GOOD)
    write(pytester, "summary_buggy", BUGGY)
    args = ["--backprop-check", "summary_good", "--backprop-check", "summary_buggy", "--backprop-cases", "2"]
    result = pytester.runpytest(*args)
    result.stdout.fnmatch_lines(
        [
            "*= backprop-check =*",
            "FAIL summary_buggy::backprop[[]affine[]]: */* cases failed; *unreduced_broadcast*",
            "FAIL summary_buggy::backprop[[]affine_t[]]: */* cases failed; *transposed*",
            "PASS summary_good::backprop[[]affine[]]: 2 cases",
            "PASS summary_good::backprop[[]relu[]]: 2 cases",
            "backprop-check: 2 passed, 2 failed (seed 0)",
        ]
    )


def test_without_options_the_plugin_adds_no_header_and_no_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    lines = result.stdout.lines
    assert not any(line.startswith("backprop-check") or "= backprop-check =" in line for line in lines)


def test_k_m_and_deselect_filter_the_items(pytester: pytest.Pytester) -> None:
    write(pytester, "select_buggy", BUGGY)
    write(pytester, "select_good", GOOD)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    common = ["--backprop-check", "select_buggy", "--backprop-check", "select_good", "--backprop-cases", "2"]
    result = pytester.runpytest(
        *common, "-k", "backprop[affine]", "--deselect", "select_good::backprop[affine]"
    )
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(["FAILED select_buggy::backprop[[]affine[]] *"])
    result = pytester.runpytest(*common, "-m", "not backprop", "-p", "no:randomly")
    result.assert_outcomes(passed=1, deselected=4)


def test_x_stops_after_the_first_failing_function(pytester: pytest.Pytester) -> None:
    write(pytester, "stop_buggy", BUGGY)
    result = pytester.runpytest("--backprop-check", "stop_buggy", "--backprop-cases", "2", "-x")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_junitxml_carries_the_failure_message_and_the_users_location(pytester: pytest.Pytester) -> None:
    buggy = write(pytester, "junit_buggy", BUGGY)
    write(pytester, "junit_good", GOOD)
    args = ["--backprop-check", "junit_buggy", "--backprop-check", "junit_good", "--backprop-cases", "2"]
    pytester.runpytest(*args, "--junitxml=junit.xml", "-o", "junit_family=xunit1")
    cases = {
        (case.get("classname"), case.get("name")): case
        for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    }
    assert set(cases) == {
        ("junit_buggy", "backprop[affine]"),
        ("junit_buggy", "backprop[affine_t]"),
        ("junit_good", "backprop[affine]"),
        ("junit_good", "backprop[relu]"),
    }
    failure = cases["junit_buggy", "backprop[affine]"].find("failure")
    assert failure is not None
    assert "diagnosis: " in failure.get("message", "") and "unreduced_broadcast" in failure.get("message", "")
    assert "reproduce:             backprop-check run junit_buggy --only affine" in (failure.text or "")
    assert cases["junit_good", "backprop[relu]"].find("failure") is None
    backward_line = buggy.read_text().splitlines().index("def affine_backward(dout, cache):")  # 0-based
    assert cases["junit_buggy", "backprop[affine]"].get("file") == "junit_buggy.py"
    assert cases["junit_buggy", "backprop[affine]"].get("line") == str(backward_line)


@pytest.mark.parametrize("style", ["pyproject", "pytest.ini"])
def test_modules_and_settings_come_from_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, style: str
) -> None:
    write(pytester, "ini_layers", GOOD)
    if style == "pyproject":
        pytester.makepyprojecttoml(
            "[tool.pytest.ini_options]\nbackprop_check_modules = ['ini_layers']\n"
            "backprop_cases = 2\nbackprop_seed = 7\nbackprop_report = 'out/report.json'\n"
        )
    else:
        pytester.makeini(
            "[pytest]\nbackprop_check_modules =\n    ini_layers\n"
            "backprop_cases = 2\nbackprop_seed = 7\nbackprop_report = out/report.json\n"
        )
    (pytester.path / "sub").mkdir()
    monkeypatch.chdir(pytester.path / "sub")  # modules and the report are relative to the rootdir / ini file
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["backprop-check: seed=7, cases=2, modules: ini_layers", "*report written: *"]
    )
    written = json.loads((pytester.path / "out" / "report.json").read_text())
    assert written["settings"]["seed"] == 7 and written["settings"]["cases"] == 2
    assert [s["function"] for s in written["summary"]] == ["affine", "relu"]
    assert {s["cases"] for s in written["summary"]} == {2}


def test_command_line_options_override_the_ini_file(pytester: pytest.Pytester) -> None:
    write(pytester, "ini_a", GOOD)
    write(pytester, "cli_b", GOOD)
    pytester.makeini("[pytest]\nbackprop_check_modules = ini_a\nbackprop_seed = 7\nbackprop_cases = 4\n")
    result = pytester.runpytest("--collect-only", "--backprop-check", "cli_b", "--backprop-seed", "1")
    result.stdout.fnmatch_lines(["backprop-check: seed=1, cases=4, modules: cli_b", "*cli_b*"])
    assert "ini_a" not in result.stdout.str()


def test_report_option_writes_the_records_in_the_format_of_its_extension(pytester: pytest.Pytester) -> None:
    write(pytester, "report_buggy", BUGGY)
    result = pytester.runpytest(
        "--backprop-check", "report_buggy", "--backprop-cases", "2", "--backprop-report", "report.csv"
    )
    result.assert_outcomes(failed=2)
    lines = (pytester.path / "report.csv").read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert any("unreduced_broadcast" in line for line in lines) and any(
        "transposed" in line for line in lines
    )


def test_tolerance_option_reaches_every_check(pytester: pytest.Pytester) -> None:
    write(pytester, "tol_layers", SLIGHTLY_OFF)
    strict = pytester.runpytest("--backprop-check", "tol_layers", "--backprop-cases", "2")
    strict.assert_outcomes(failed=1)
    loose = "rtol=1e-2,atol=1e-6,fd_rtol=1e-2,fd_atol=1e-6"
    result = pytester.runpytest(
        "--backprop-check", "tol_layers", "--backprop-cases", "2", "--backprop-tol", loose
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"backprop-check: seed=0, cases=2, tol={loose}, modules: tol_layers"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backprop-tol", "rtol=abc"], "expected KEY=NUMBER pairs"),
        (["--backprop-tol", "tolerance=1"], "unknown keys ['tolerance']"),
        (["--backprop-cases", "0"], "--backprop-cases=0: must be a whole number >= 1"),
        (["-o", "backprop_cases=many"], "backprop_cases='many': expected a whole number"),
        (["--backprop-report", "report.txt"], "the extension must be one of .csv, .json, .md, .html"),
    ],
    ids=["tol-value", "tol-key", "cases", "ini-cases", "report"],
)
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


FIXTURE_TESTS = """
import pytest

import fixture_layers  # registers affine and relu
import fixture_buggy  # noqa: F401


def test_settings_come_from_the_command_line(backprop):
    report = backprop.check("relu")
    assert report.passed and report.settings["seed"] == 3 and report.summaries[0].cases == 2


@pytest.mark.backprop(cases=1)
def test_the_marker_overrides_them(backprop):
    assert backprop.check(fixture_layers.affine_target).summaries[0].cases == 1


def test_keywords_override_both(backprop):
    assert backprop.check("relu", cases=3, seed=0).summaries[0].cases == 3


def test_a_failing_module_fails_the_test(backprop):
    backprop.run("fixture_buggy")
"""


def test_the_fixture_checks_with_the_run_settings_and_fails_with_the_harness_message(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "fixture_layers", GOOD + '\naffine_target = bc.get_target("affine")\n')
    write(pytester, "fixture_buggy", BUGGY.replace('"affine"', '"buggy_affine"'))
    pytester.makepyfile(test_fixture=FIXTURE_TESTS)
    result = pytester.runpytest("--backprop-seed", "3", "--backprop-cases", "2")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_a_failing_module_fails_the_test _*",
            "backprop-check: 2 of 2 functions failed",
            "buggy_affine: * cases failed; diagnosis: *unreduced_broadcast* (seed 3)",
            "  check shape, gradient db, diagnosis unreduced_broadcast:",
            "affine_t: * cases failed; diagnosis: transposed*",
            "*= backprop-check =*",
            "FAIL test_fixture.py::test_a_failing_module_fails_the_test -> buggy_affine: *",
            "PASS test_fixture.py::test_settings_come_from_the_command_line -> relu: 2 cases",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_under_xdist_the_controller_gathers_every_workers_results(pytester: pytest.Pytester) -> None:
    write(pytester, "xdist_good", GOOD)
    write(pytester, "xdist_buggy", BUGGY)
    pytester.makepyfile(test_fixture="def test_fixture(backprop):\n    backprop.check('relu', cases=1)\n")
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "-v",
        "--backprop-check",
        "xdist_good",
        "--backprop-check",
        "xdist_buggy",
        "--backprop-cases",
        "2",
        "--backprop-report",
        "report.json",
        "--junitxml",
        "junit.xml",
    )
    result.assert_outcomes(passed=3, failed=2)
    output = result.stdout.str()
    assert "[gw0]" in output and "[gw1]" in output
    result.stdout.fnmatch_lines(
        [
            "*check shape, gradient db, diagnosis unreduced_broadcast:",
            "*= backprop-check =*",
            "FAIL xdist_buggy::backprop[[]affine[]]: *unreduced_broadcast*",
            "FAIL xdist_buggy::backprop[[]affine_t[]]: *transposed*",
            "PASS xdist_good::backprop[[]affine[]]: 2 cases",
            "PASS xdist_good::backprop[[]relu[]]: 2 cases",
            "backprop-check: 3 passed, 2 failed (seed 0)",
        ]
    )
    written = json.loads((pytester.path / "report.json").read_text())
    assert [s["function"] for s in written["summary"]] == ["relu", "affine", "affine_t", "affine", "relu"]
    assert {r["function"] for r in written["records"]} == {"relu", "affine", "affine_t"}
    junit = ET.parse(pytester.path / "junit.xml").getroot()
    failures = [f.get("message", "") for f in junit.iter("failure")]
    assert len(failures) == 2 and any("unreduced_broadcast" in m for m in failures)


def heatmaps(page: str) -> list[str]:
    """The alt texts of a report's heatmap pictures (an HTML parse, not a text search)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Images(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            alt = dict(attrs).get("alt") or ""
            if (
                tag == "img"
                and alt.startswith("heatmaps of")
                and (dict(attrs).get("src") or "").startswith("data:image/png;base64,")
            ):
                found.append(alt)

    Images().feed(page)
    return found


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_the_pytest_report_has_the_pictures_of_the_cli_report(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    from checker.cli import main

    write(pytester, "pictured_buggy", BUGGY)
    args = ["-p", "no:randomly", "-p", "no:cacheprovider", *workers, "--backprop-check", "pictured_buggy"]
    result = pytester.runpytest_subprocess(*args, "--backprop-cases", "3", "--backprop-report", "pytest.html")
    result.assert_outcomes(failed=2)
    from_pytest = heatmaps((pytester.path / "pytest.html").read_text())
    assert (
        main(["run", str(pytester.path / "pictured_buggy.py"), "--cases", "3", "--report", "cli.html"]) == 1
    )
    from_cli = heatmaps((pytester.path / "cli.html").read_text())
    assert len(from_cli) >= 2 and sorted(from_pytest) == sorted(from_cli)


def test_evidence_travels_compactly_and_capped() -> None:
    import numpy as np

    from checker.pytest_payload import MAX_ELEMENTS, from_payload, to_payload
    from checker.results import CheckResult, FunctionSummary

    small = {"expected": np.arange(6.0).reshape(2, 3), "actual": np.zeros((2, 3), dtype=np.float32)}
    large = {"expected": np.ones(MAX_ELEMENTS + 1), "actual": np.zeros(MAX_ELEMENTS + 1)}
    rows = [
        CheckResult("grad_torch", "w", "fail", function="f", case=0, evidence=small),
        CheckResult("grad_torch", "b", "fail", function="f", case=0, evidence=large),
        CheckResult("grad_fd", "w", "pass", function="f", case=0, evidence=small),  # passing: no picture
    ]
    summary = FunctionSummary("f", "fail", 1, 1, 3, 2, "", 1.0, 0.1)
    payload = to_payload([(rows, summary)])
    json.dumps(payload)  # plain data: execnet carries it, and so would any JSON report plugin
    records, summaries = from_payload(payload)
    assert summaries == [summary] and [r.check for r in records] == [r.check for r in rows]
    np.testing.assert_array_equal(records[0].evidence["expected"], small["expected"])
    assert records[0].evidence["actual"].dtype == np.float32
    assert records[1].evidence == {} and records[2].evidence == {}


STAGED = """
import numpy as np
import checker as bc


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    N = x.shape[0]
    mu = x.sum(axis=0) / N
    xmu = x - mu
    sq = xmu**2
    var = sq.sum(axis=0) / N
    sqrtvar = np.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    out = gamma * xhat + beta
    return out, (xhat, gamma, xmu, ivar, sqrtvar, var, eps)


def batchnorm_backward(dout, cache):
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = 1.0 / sqrtvar**2 * divar
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(xmu) / N * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N
    return dx, dgamma, dbeta


bc.register("batchnorm", forward=batchnorm_forward, backward=batchnorm_backward,
            inputs={"x": "N,D", "gamma": "D", "beta": "D"}, dims={"N": range(2, 7)})
"""


def test_a_localised_failure_says_where_in_its_text_and_in_the_controllers_report(
    pytester: pytest.Pytester,
) -> None:
    """Under xdist: the worker's failure text has the where line, and the report the controller
    writes has the where section (the steps, the first wrong one, its picture)."""
    write(pytester, "staged_layers", STAGED)
    write(pytester, "where_good", GOOD)
    common = ("-p", "no:randomly", "-p", "no:cacheprovider", "--backprop-cases", "2")
    result = pytester.runpytest_subprocess(
        "-n", "2", *common, "--backprop-check", "staged_layers", "--backprop-check", "where_good",
        "--backprop-report", "report.html",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)
    statement = "dsqrtvar = 1.0 / sqrtvar**2 * divar"
    line = next(i for i, text in enumerate(STAGED.strip().splitlines(), 1) if text.strip() == statement)
    at = f"staged_layers.py:{line}"
    result.stdout.fnmatch_lines(
        [
            "batchnorm: * cases failed; diagnosis: *sign_flipped* (seed 0)",
            "  check localize, gradient dx, diagnosis sign_flipped:",
            f"    dxhat, divar are right; dsqrtvar is wrong ({at}: `{statement}`)*",
            f"  where: * dsqrtvar at {at}: `{statement}` (sign_flipped)",
            "*= backprop-check =*",
            f"FAIL staged_layers::backprop[[]batchnorm[]]: * cases failed; sign_flipped*; where dsqrtvar at {at}",
        ]
    )
    assert "where:" not in result.stdout.str().split("batchnorm: ")[0]  # the passing items tell nothing
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "<h3 id='fn-0-batchnorm-where'>Where the backward goes wrong</h3>" in page
    assert page.count("<tr class='first_wrong'>") == 1
    assert f"<td class='at'>{at}</td><td><code>{statement}</code>" in page
    assert "alt='heatmaps of dsqrtvar: expected, yours, difference'" in page
