"""The command line: exit codes 0/1/2, readable output, reports written, usage errors without tracebacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from checker.cli import main

GOOD = """
import numpy as np
import checker as bc

def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)

def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)

bc.register("affine", forward=affine_forward, backward=affine_backward,
            inputs={"x": "N,D", "w": "D,M", "b": "M"})
"""

BUGGY = GOOD.replace("dout.sum(axis=0)", "dout")


@pytest.fixture
def module_file(tmp_path):
    def write(source: str, name: str = "user_layers.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


def test_passing_module_exits_0_and_writes_the_report(module_file, tmp_path, capsys):
    path = module_file(GOOD, "good_layers.py")
    report = tmp_path / "out" / "run.json"
    assert main(["run", str(path), "--cases", "2", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "1 passed, 0 failed" in out
    data = json.loads(report.read_text())
    assert {r["status"] for r in data["records"]} == {"pass"}


def test_buggy_module_exits_1_naming_the_gradient_its_shape_and_the_fix(module_file, capsys):
    path = module_file(BUGGY, "buggy_layers.py")
    assert main(["run", str(path), "--cases", "3"]) == 1
    out = capsys.readouterr().out
    assert "db has shape" in out and "b has shape" in out
    assert "sum the gradient over axis 0" in out
    assert re.search(r"^  reproduce: +backprop-check run", out, flags=re.M)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "no_such_module_xyz"], "neither a registered function"),
        (["run", "missing_file.py"], "no such file"),
        (["run", "x.py", "--cases", "0"], "must be a whole number >= 1"),
        (["run", "x.py", "--dims", "N:3"], "SYMBOL=SIZE"),
        (["run", "x.py", "--oracles", "bogus"], "choose from fd, torch, autograd"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_module_that_raises_at_import_is_a_usage_error_with_the_reason(module_file, capsys):
    path = module_file("import numpy\nraise RuntimeError('forgot to set DATA_DIR')\n", "broken_layers.py")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "RuntimeError: forgot to set DATA_DIR" in err
    assert "Traceback" not in err


def test_module_with_a_syntax_error_names_the_line(module_file, capsys):
    path = module_file("def f(:\n    pass\n", "syntax_layers.py")
    assert main(["run", str(path)]) == 2
    assert "SyntaxError" in capsys.readouterr().err


def test_unknown_report_extension_is_a_usage_error(module_file, capsys):
    path = module_file(GOOD, "good2_layers.py")
    assert main(["run", str(path), "--cases", "1", "--report", "out.xlsx"]) == 2
    assert "extension must be one of" in capsys.readouterr().err


def test_pinned_dims_reproduce_exactly_one_case(module_file, capsys):
    path = module_file(BUGGY, "buggy2_layers.py")
    assert main(["run", str(path), "--dims", "N=2,D=3,M=4", "--report", str(path.with_suffix(".csv"))]) == 1
    import pandas as pd

    frame = pd.read_csv(path.with_suffix(".csv"))
    assert set(frame.dims) == {"N=2, D=3, M=4"}


def test_console_script_runs_the_reference_bank_quietly():
    result = subprocess.run(
        [sys.executable, "-m", "checker.cli", "run", "reference_impls", "--cases", "2", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed, 0 failed" in result.stdout


def test_sys_exit_inside_user_code_is_an_error_row_not_a_silent_success(module_file, tmp_path, capsys):
    source = BUGGY + textwrap.dedent(
        """
        import sys

        def exiting_forward(x):
            sys.exit(0)

        bc.register("exits", forward=exiting_forward, backward=lambda d, c: d, inputs={"x": "N,D"})
        """
    )
    path = module_file(source, "exiting_layers.py")
    report = tmp_path / "exit.json"
    assert main(["run", str(path), "--cases", "2", "--report", str(report)]) == 1
    records = json.loads(report.read_text())["records"]
    assert any("SystemExit: 0" in r["message"] for r in records)
    assert any(r["function"] == "affine" and r["status"] == "fail" for r in records)
