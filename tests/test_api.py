"""The public API on one page: every exported name documented, every misuse a named BackpropCheckError."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import checker as bc
from checker import errors
from tests.conftest import affine_backward, affine_forward

ROOT = Path(__file__).resolve().parents[1]


def readme_api_names() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The Python API", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names += re.findall(r"`([A-Za-z_]+)`", first_cell)
    return names


def test_the_readme_table_documents_exactly_the_exported_names():
    documented = readme_api_names()
    assert len(documented) == len(set(documented)), "a name is documented twice"
    assert sorted(documented) == sorted(bc.__all__)


def test_every_exported_name_can_be_loaded():
    for name in bc.__all__:
        assert getattr(bc, name) is not None


def test_every_error_class_is_a_backprop_check_error():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), bc.BackpropCheckError)
    assert not issubclass(bc.OptionError, bc.RegistrationError)  # check()'s keywords are not registration


@pytest.fixture
def affine():
    return bc.register(
        "affine_api",
        forward=affine_forward,
        backward=affine_backward,
        inputs={"x": "N,D", "w": "D,M", "b": "M"},
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mode": "bogus"}, "mode='bogus' must be one of auto, full, directional, sampled"),
        ({"oracles": ["jax"]}, "oracles=['jax']: choose one or more of fd, torch, autograd"),
        ({"oracles": "fd"}, "oracles='fd' must be a list of names"),
        ({"oracles": []}, "oracles=[]: choose one or more of"),
        ({"cases": 0}, "cases=0 must be a whole number >= 1"),
        ({"cases": 2.5}, "cases=2.5 must be a whole number >= 1"),
        ({"cases": True}, "cases=True must be a whole number"),
        ({"timeout": 0}, "timeout=0 must be a finite number of seconds > 0 (or None for no limit)"),
        ({"timeout": -5}, "timeout=-5 must be"),
        ({"timeout": float("nan")}, "timeout=nan must be"),
        ({"timeout": "60"}, "timeout='60' must be"),
        ({"timeout": True}, "timeout=True must be"),
        ({"dims": [1, 2]}, "dims=[1, 2] must be a dict like {'N': 1, 'D': 3}"),
        ({"dims": {"N": 0}}, "dims {'N': 0} must be whole numbers >= 1"),
        ({"dims": {"Q": 2}}, "affine_api: dims ['Q'] are not symbols of it (symbols: N, D, M)"),
        ({"tol": {"tolerance": 1}}, "tol has unknown keys ['tolerance']"),
        ({"tol": {"rtol": -1}}, "rtol=-1 must be a finite number >= 0"),
        ({"tol": "loose"}, "tol='loose' must be a dict"),
        ({"seed": "0"}, "seed='0' must be a whole number"),
        ({"shrink": "no"}, "shrink='no' must be True or False"),
    ],
)
def test_a_misused_keyword_of_check_raises_an_option_error_naming_it(affine, kwargs, fragment):
    with pytest.raises(bc.OptionError) as err:
        bc.check(affine, **kwargs)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)  # code that caught ValueError still does


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mode": "bogus"}, "mode='bogus'"),
        ({"only": "affine_api"}, "only='affine_api' must be a list of registered names"),
        ({"only": ["nope"]}, "--only nope: not registered"),
    ],
)
def test_a_misused_keyword_of_run_raises_before_anything_runs(affine, kwargs, fragment):
    with pytest.raises(bc.BackpropCheckError) as err:
        bc.run([affine], **kwargs)
    assert fragment in str(err.value)


def test_a_report_path_with_an_unknown_extension_is_an_option_error(affine, tmp_path):
    report = bc.check(affine, cases=1)
    with pytest.raises(bc.OptionError, match=r"extension must be one of \.csv, \.json, \.md, \.html"):
        report.write(tmp_path / "run.xlsx")
    with pytest.raises(bc.OptionError, match=r"must be \.csv or \.json"):
        bc.read_frame(tmp_path / "run.md")


def test_the_record_layer_imports_nothing_above_it():
    """results.py holds data: it reaches the writers only through what checker.report installs."""
    tree = ast.parse((ROOT / "checker" / "results.py").read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("checker")
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("checker")
    }
    assert imported == set()


def test_a_report_writes_prints_and_renders_itself_through_the_report_module(affine, tmp_path):
    from checker.report import write_report

    report = bc.check(affine, cases=2)
    assert (
        report.write(tmp_path / "a.csv").read_text() == write_report(report, tmp_path / "b.csv").read_text()
    )
    assert "<table" in report._repr_html_()
    assert "affine_api" in str(report) and "1 passed, 0 failed" in str(report)
