"""The README's examples run, and its exercise table matches the bank, so neither can rot."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_python_examples_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_examples"}
    code = blocks("python")
    assert len(code) >= 3
    for source in code:
        exec(compile(source, "README.md", "exec"), namespace)


def test_exercise_table_matches_the_bank():
    import reference_impls
    from reference_impls.bank import exercises_markdown

    assert exercises_markdown(reference_impls.EXERCISES) in README


def test_no_placeholder_is_left():
    assert not re.search(r"\b[A-Z]+-(TABLE|SECTION)\b", README)


def console_commands() -> list[str]:
    return [
        line[2:]
        for block in blocks("console")
        for line in block.splitlines()
        if line.startswith("$ backprop-check run reference_impls")
    ]


@pytest.mark.parametrize("command", console_commands())
def test_console_examples_for_the_bank_pass(command, tmp_path):
    argv = shlex.split(command)
    argv = [str(tmp_path / Path(a).name) if a.startswith("reports/") else a for a in argv]
    result = subprocess.run(
        [sys.executable, "-m", "checker.cli", *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
