"""Several seeds in one run: the CLI's --seed 0,1,2 and 0-9, a list in bc.run and in pytest; every row
says the seed it ran."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

import checker as bc
from checker.cli import main
from checker.errors import SpecError
from checker.spec import parse_seeds, seed_text
from tests.conftest import affine_backward, affine_forward

AFFINE_INPUTS = {"x": "N,D", "w": "D,M", "b": "M"}


@pytest.mark.parametrize(
    ("given", "seeds"),
    [
        (0, (0,)),
        ("7", (7,)),
        ("0,1,2", (0, 1, 2)),
        ("0-4", (0, 1, 2, 3, 4)),
        ("0,3-5", (0, 3, 4, 5)),
        ([3, 1, 3], (3, 1)),
        ("[0, 1, 2]", (0, 1, 2)),  # a TOML list as pytest's ini hands it over
    ],
)
def test_seeds_are_read_as_one_a_list_or_a_range(given, seeds):
    assert parse_seeds(given) == seeds


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("x", "'x' is not a seed"),
        ("-1", "is not a seed"),
        ("5-3", "must go up"),
        ("", "is not a seed"),
        (1.5, ""),
    ],
)
def test_a_bad_seed_names_itself_and_says_what_a_seed_is(given, says):
    with pytest.raises(SpecError, match=r"a seed is a whole number|must go up") as caught:
        parse_seeds(given, "--seed")
    assert str(caught.value).startswith("--seed=") and says in str(caught.value)


def test_seed_text_gives_the_seeds_back_as_the_command_line_takes_them():
    assert seed_text((0, 1, 2, 5, 7, 8, 9)) == "0-2,5,7-9" and seed_text(4) == "4"


def test_a_run_over_three_seeds_says_which_seed_each_row_ran():
    bc.register("affine_seeds", forward=affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    report = bc.run("affine_seeds", seed=[0, 1, 2], cases=2)
    frame = report.frame
    assert report.passed and set(frame.seed) == {0, 1, 2}
    assert frame.groupby("seed").case.nunique().to_dict() == {0: 2, 1: 2, 2: 2}
    # Case numbers run on across seeds: (seed, case) and case alone both name one case.
    assert frame.groupby("case").seed.nunique().max() == 1
    assert report.summaries[0].cases == 6 and report.settings["seed"] == [0, 1, 2]


def test_a_single_seed_rows_say_that_seed():
    bc.register("affine_one_seed", forward=affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    assert set(bc.check("affine_one_seed", seed=5, cases=2).frame.seed) == {5}


def test_the_reproduce_command_names_a_seed_that_fails():
    def backward(dout, cache):
        x, w, _ = cache
        dw = x.T @ dout
        if x.flat[0] > 0.5:  # wrong for some draws only
            dw = 2 * dw
        return dout @ w.T, dw, dout.sum(axis=0)

    bc.register("affine_sometimes", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    report = bc.run("affine_sometimes", seed="0-5", cases=2, shrink=False)
    failing_seeds = set(report.frame[report.frame.status == "fail"].seed)
    assert failing_seeds and failing_seeds != set(range(6))
    reproduce = report.summaries[0].reproduce
    seed = int(reproduce.split("--seed ")[1].split()[0])
    dims = dict(p.split("=") for p in reproduce.split("--dims ")[1].split(","))
    assert seed in failing_seeds
    assert not bc.check("affine_sometimes", seed=seed, dims={k: int(v) for k, v in dims.items()}).passed


GOOD = """
import checker as bc

def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)

def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)

bc.register("affine", forward=affine_forward, backward=affine_backward,
            inputs={"x": "N,D", "w": "D,M", "b": "M"})
"""


def test_the_command_line_takes_a_list_and_a_range_of_seeds(tmp_path, capsys):
    path = tmp_path / "seeded_layers.py"
    path.write_text(textwrap.dedent(GOOD))
    report = tmp_path / "run.json"
    assert main(["run", str(path), "--seed", "0,2-3", "--cases", "1", "--report", str(report)]) == 0
    records = json.loads(report.read_text())["records"]
    assert {r["seed"] for r in records} == {0, 2, 3}


def test_a_bad_seed_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "seeded_layers.py"
    path.write_text(textwrap.dedent(GOOD))
    assert main(["run", str(path), "--seed", "0,x"]) == 2
    err = capsys.readouterr().err
    assert "argument --seed: 'x' is not a seed" in err and "Traceback" not in err


def test_a_seed_list_reaches_every_pytest_door(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(seeded_layers=GOOD)
    pytester.makepyprojecttoml(
        "[tool.pytest.ini_options]\nbackprop_check_modules = ['seeded_layers']\nbackprop_seed = [0, 1]\n"
        "backprop_cases = 1\nbackprop_report = 'report.json'\n"
    )
    pytester.makepyfile(
        test_marked=(
            "import pytest\n\n@pytest.mark.backprop(seed=[4, 5], cases=1)\n"
            "def test_marked(backprop):\n"
            "    assert set(backprop.check('affine').frame.seed) == {4, 5}\n"
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error::pytest.PytestRemovedIn10Warning"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["backprop-check: seed=0,1, cases=1*"])
    records = json.loads((pytester.path / "report.json").read_text())["records"]
    assert {r["seed"] for r in records} >= {0, 1}
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--backprop-seed", "2-3", "-k", "affine")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["backprop-check: seed=2,3, cases=1*"])


def test_the_seed_column_is_an_integer_column_in_every_report_format(tmp_path):
    bc.register("affine_seed_csv", forward=affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    report = bc.run("affine_seed_csv", seed=[1, 2], cases=1)
    assert report.frame.seed.dtype == np.int64
