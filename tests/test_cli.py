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


# --- the terminal: progress, wrapping, and nothing of either when piped ----------------------------------

RAISES_AT_ODD_H = """
import numpy as np
import checker as bc

def pool_forward(x):
    n, h = x.shape
    out = x.reshape(n, h // 2, 2).max(axis=2)
    return out, (x, out)

def pool_backward(dout, cache):
    x, out = cache
    n, h = x.shape
    mask = x.reshape(n, h // 2, 2) == out[:, :, None]
    return (mask * dout[:, :, None]).reshape(n, h)

bc.register("pool", forward=pool_forward, backward=pool_backward, inputs={"x": "N,H"},
            dims={"H": range(1, 7)})
"""

LONG_MESSAGE = """
import checker as bc

def long_forward(x):
    raise ValueError("this message is deliberately long, " * 12 + "and ends here")

bc.register("long", forward=long_forward, backward=lambda dout, cache: dout, inputs={"x": "N,D"})
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "checker.cli", *args]


def test_on_a_terminal_a_progress_bar_shows_the_function_its_case_and_the_time(module_file):
    from tests.pseudo_terminal import run_on_terminal, without_escapes

    path = module_file(GOOD, "progress_layers.py")
    code, output = run_on_terminal(cli("run", str(path), "--cases", "3"))
    assert code == 0, output
    text = without_escapes(output)
    assert re.search(r"affine · case [123]/3 .*\d/1 .*0:00:\d\d", text) or "affine done" in text, text[-2000:]
    assert "\x1b[?25l" in output  # the cursor is hidden while the bar is drawn ...
    assert "1 passed, 0 failed" in text.rsplit("0:00:", 1)[-1]  # ... and the result comes after it


def test_quiet_or_piped_output_has_no_progress_bar_and_no_escape_codes(module_file):
    from tests.pseudo_terminal import run_on_terminal, without_escapes

    path = module_file(GOOD, "quiet_layers.py")
    code, output = run_on_terminal(cli("run", str(path), "--cases", "2", "--quiet"))
    assert code == 0 and "case 1/2" not in without_escapes(output) and "0:00:" not in output
    piped = subprocess.run(cli("run", str(path), "--cases", "2"), capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0
    assert "\x1b[" not in piped.stdout and "case 1/2" not in piped.stdout and "0:00:" not in piped.stdout


def test_piped_output_is_never_wrapped(module_file):
    path = module_file(LONG_MESSAGE, "long_layers.py")
    piped = subprocess.run(cli("run", str(path), "--cases", "2"), capture_output=True, text=True, timeout=300)
    assert piped.returncode == 1
    message = "this message is deliberately long, " * 12 + "and ends here"
    assert any(message in line for line in piped.stdout.splitlines()), piped.stdout
    assert not any(line != line.rstrip() for line in piped.stdout.splitlines())  # no padding either


def test_on_a_terminal_the_output_wraps_to_its_width_but_commands_stay_whole(module_file):
    from tests.pseudo_terminal import run_on_terminal, screen_lines

    path = module_file(LONG_MESSAGE, "wrapped_layers.py")
    code, output = run_on_terminal(cli("run", str(path), "--cases", "2"), columns=80)
    assert code == 1
    lines = [line for line in screen_lines(output) if line.strip()]
    reproduce = [line for line in lines if line.lstrip().startswith("reproduce:")]
    assert len(reproduce) == 1 and reproduce[0].rstrip().endswith("--dims N=1,D=1")  # one line to copy
    assert all(len(line) <= 80 for line in lines if line not in reproduce), "\n".join(lines)
    assert "deliberately long" in "".join(lines)


def test_code_that_raises_at_some_shapes_gets_a_constraint_with_the_failing_and_passing_sizes(
    module_file, capsys
):
    path = module_file(RAISES_AT_ODD_H, "odd_layers.py")
    assert main(["run", str(path), "--cases", "8", "--no-shrink"]) == 1
    out = capsys.readouterr().out
    advice = next(line for line in out.splitlines() if line.lstrip().startswith("advice:"))
    assert re.search(
        r"your code raised at some shapes only \(fails at H = [135](, [135])*; passes at H = [246]", advice
    )
    assert 'constraint=lambda d: d["H"] % 2 == 0' in advice
    assert re.search(r'dims=\{"H": \([246](, [246])*,?\)\}', advice)


def test_grade_shows_progress_on_a_terminal_and_the_reason_in_the_hint(tmp_path):
    from tests.pseudo_terminal import run_on_terminal, without_escapes

    broken = tmp_path / "broken_student.py"
    broken.write_text("import numpy as np\n\ndef affine_forward(x, w, b)\n    return x @ w + b\n")
    torch_user = tmp_path / "torch_student.py"
    torch_user.write_text("import torch\n\ndef affine_forward(x, w, b):\n    return x @ w + b, None\n")
    args = ["grade", str(broken), str(torch_user), "--exercises", "affine", "--no-sandbox"]
    code, output = run_on_terminal(cli(*args), columns=250)
    text = without_escapes(output)
    assert code == 1
    assert re.search(r"(planning the cases|graded \w+_student) .*\d/2 .*0:00:\d\d", text), text[-3000:]
    # The hint column says why, not only the line under the table.
    assert "│ your submission could not be imported: broken_student.py line 3: SyntaxError" in text
    assert "│ your submission imports torch (torch_student.py line 1), which is not allowed" in text
