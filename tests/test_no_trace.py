"""A run writes only what it was asked to write: no ``.hypothesis/``, no ``__pycache__`` in the user's folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LAYERS = """
import checker as bc


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, x.T @ dout, dout  # db not summed: the failure is shrunk, which runs hypothesis again


bc.register("affine", forward=affine_forward, backward=affine_backward, inputs={"x": "N,D", "w": "D,M", "b": "M"})
"""


#: Two cases and finite differences only (no torch to load): enough to draw dims and shrink a failure.
QUICK = ["--cases", "2", "--oracles", "fd"]


def _clean_env() -> dict[str, str]:
    """The environment of a user who never heard of our settings: bytecode written, default storage."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HYPOTHESIS_", "PYTHONDONTWRITEBYTECODE"))
    }
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _listing(folder: Path, *, bytecode: bool = True) -> set[str]:
    """Every path under ``folder``; ``bytecode=False`` leaves out ``__pycache__`` (written by Python's own import)."""
    paths = {str(p.relative_to(folder)) for p in folder.rglob("*")}
    return paths if bytecode else {p for p in paths if not p.startswith("__pycache__")}


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    (tmp_path / "mylayers.py").write_text(LAYERS)
    return tmp_path


def test_the_cli_leaves_only_the_report_it_was_asked_for(user_folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "checker.cli", "run", "mylayers.py", *QUICK, "--report", "out.html"],
        cwd=user_folder,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # the planted mistake, shrunk
    assert "smallest failing dims" in (user_folder / "out.html").read_text()
    assert _listing(user_folder) == {"mylayers.py", "out.html"}


def test_the_python_api_leaves_nothing_behind(user_folder: Path) -> None:
    script = "import checker as bc, mylayers\nassert not bc.run('mylayers', cases=2, oracles=['fd']).passed\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=user_folder,
        env=_clean_env() | {"PYTHONPATH": str(user_folder)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The script's own ``import mylayers`` writes its bytecode; nothing of ours writes anything.
    assert _listing(user_folder, bytecode=False) == {"mylayers.py"}


def test_the_pytest_plugin_leaves_no_hypothesis_folder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mylayers=LAYERS)
    before = _listing(pytester.path)
    result = pytester.runpytest_subprocess(
        "--backprop-check", "mylayers", "--backprop-cases", "2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1)
    pytesters_own = {"stdout", "stderr", "runpytest-0", "runpytest-current"}  # its captured output, basetemp
    new = {
        p for p in _listing(pytester.path, bytecode=False) - before if p.split("/")[0] not in pytesters_own
    }
    assert new == set()


def test_a_storage_folder_the_user_chose_is_used(
    user_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    chosen = tmp_path_factory.mktemp("hypothesis-storage")
    result = subprocess.run(
        [sys.executable, "-m", "checker.cli", "run", "mylayers.py", *QUICK, "--quiet"],
        cwd=user_folder,
        env=_clean_env() | {"HYPOTHESIS_STORAGE_DIRECTORY": str(chosen)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert _listing(user_folder) == {"mylayers.py"}
    assert any(chosen.rglob("*")), "hypothesis wrote nothing where the user asked it to"
