"""An interrupted grader (SIGINT, as a terminal's Ctrl-C sends it to the foreground process group;
SIGTERM, as a process manager sends it) writes complete, parseable reports: what finished, and a
"not graded" row for the rest. Progress shows on a terminal and nowhere else."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd
import pytest

import reference_impls
from checker.grading.cluster import INTERRUPTED, Interrupts
from checker.grading.grade import grade
from checker.grading.records import Limits
from tests.grading.test_sandbox import SUBMISSIONS

ROOT = Path(__file__).resolve().parents[2]
AFFINE = reference_impls.exercise("affine")
EXPECTED = {"hang": 0.0, "honest_a": 5.0, "returns_zeros": 0.0, "honest_b": 5.0, "honest_c": 5.0}


def _class(tmp_path: Path) -> list[Path]:
    """``hang`` first, so that it holds a worker until the signal (its timeout is far away)."""
    folder = tmp_path / "class"
    folder.mkdir()
    for name in EXPECTED:
        source = "correct_affine" if name.startswith("honest") else name
        shutil.copy(SUBMISSIONS / f"{source}.py", folder / f"{name}.py")
    return [folder / f"{name}.py" for name in EXPECTED]


def _session_children(pid: int) -> list[int]:
    """Children of ``pid`` that lead their own session: the sandboxes the grader started."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_bytes().rpartition(b")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and int(fields[3]) == int(entry) and fields[0] != b"Z":
            found.append(int(entry))
    return found


def _grade_then_signal(argv: list[str], signum: int, *, group: bool) -> tuple[int, str, str]:
    """Run ``backprop-check grade`` with its output on a terminal; send ``signum`` once the progress bar
    shows a first finished submission. Returns (exit code, stderr, what the terminal showed)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "checker.cli", "grade", *argv],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"},
        start_new_session=True,  # its own process group, as a terminal's foreground job has
    )
    os.close(slave)
    shown = bytearray()

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            shown.extend(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    first = re.compile(rb"(?<![0-9])[1-9][0-9]*/%d(?![0-9])" % len(EXPECTED))  # "1/5", amid colour codes
    deadline = time.monotonic() + 300
    while not first.search(bytes(shown)):
        assert process.poll() is None, "the grader ended before a submission finished: " + bytes(
            shown
        ).decode(errors="replace")
        assert time.monotonic() < deadline, "no submission finished in 300 s"
        time.sleep(0.1)
    (os.killpg if group else os.kill)(process.pid, signum)
    _, stderr = process.communicate(timeout=300)
    reader.join(10)
    os.close(master)
    return process.returncode, stderr.decode(), bytes(shown).decode(errors="replace")


def _assert_complete_reports(out: Path) -> None:
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], "a half-written file was left"
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert sorted(scores["submission"].unique()) == sorted(EXPECTED)
    assert len(scores) == 2 * len(EXPECTED)  # affine and TOTAL for each, no more, no less
    assert set(scores["status"]) <= {"passed", "failed", "not graded"}
    by_name = scores[scores["exercise"] == "TOTAL"].set_index("submission")
    assert by_name.loc["hang", "status"] == "not graded"
    assert by_name.loc["hang", "message"] == f"not graded: {INTERRUPTED}"
    graded = by_name[by_name["status"] != "not graded"]
    assert len(graded) >= 1, "the submission that finished before the signal was kept"
    for name, row in graded.iterrows():
        assert row["score"] == EXPECTED[name], name
    suites = ElementTree.parse(out / "junit.xml").getroot().findall("testsuite")
    assert sorted(s.get("name") for s in suites) == sorted(EXPECTED)
    errors = {s.get("name"): int(s.get("errors")) for s in suites}
    assert errors["hang"] == 1 and all(errors[n] == 0 for n in graded.index)
    for name in EXPECTED:
        results = json.loads((out / "gradescope" / f"{name}.json").read_text())
        assert results["score"] == (EXPECTED[name] if name in graded.index else 0.0)
        if name not in graded.index:
            assert "not graded" in results["tests"][0]["output"]


@pytest.mark.parametrize(
    ("scheduler", "signum", "group"),
    [(None, signal.SIGTERM, False), ("local:2", signal.SIGINT, True)],
    ids=["local-pool-SIGTERM", "dask-local2-ctrl-c"],
)
def test_an_interrupted_grader_writes_complete_reports(tmp_path, scheduler, signum, group):
    out = tmp_path / "graded"
    argv = [*map(str, _class(tmp_path)), "--timeout", "300", "--out", str(out)]
    argv += ["--scheduler", scheduler] if scheduler else ["--jobs", "2"]
    code, stderr, terminal = _grade_then_signal(argv, signum, group=group)
    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr + terminal
    assert f"interrupted by {name}" in terminal
    _assert_complete_reports(out)
    if scheduler:
        assert "Dask dashboard: http" in terminal


def test_an_interrupted_local_pool_ends_its_sandboxes_and_keeps_what_finished(tmp_path):
    def interrupt(done: int, total: int, last: str) -> None:
        if done >= 1:
            raise KeyboardInterrupt  # as Ctrl-C does, while the hang's sandbox runs

    started = time.monotonic()
    report = grade(_class(tmp_path), [AFFINE], limits=Limits(timeout_s=600), progress=interrupt)
    assert time.monotonic() - started < 300  # the hang's sandbox was ended, not waited for (600 s)
    assert report.interrupted == "SIGINT"
    assert report.not_graded["hang"] == INTERRUPTED
    assert len(report.not_graded) < len(EXPECTED)
    assert _session_children(os.getpid()) == []


def test_a_signal_before_any_submission_runs_leaves_every_row_not_graded(tmp_path):
    with Interrupts() as interrupts:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while nothing runs yet: only recorded
        report = grade(_class(tmp_path), [AFFINE], interrupts=interrupts)
    assert report.interrupted == "SIGTERM"
    assert report.not_graded == {name: INTERRUPTED for name in EXPECTED}
    assert set(report.frame()["status"]) == {"not graded"}


def test_piped_output_has_no_progress_and_no_dask_noise(tmp_path):
    out = tmp_path / "graded"
    paths = [p for p in _class(tmp_path) if p.stem != "hang"]
    command = [sys.executable, "-m", "checker.cli", "grade", *map(str, paths)]
    result = subprocess.run(
        [*command, "--scheduler", "local:2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # returns_zeros scores 0
    assert result.stderr == ""
    assert "grading" not in result.stdout.splitlines()[0] and "dashboard" not in result.stdout
    assert "(Dask LocalCluster (2 worker processes))" in result.stdout
    scores = pd.read_csv(out / "scores.csv").query("exercise == 'TOTAL'").set_index("submission")["score"]
    assert scores.to_dict() == {n: s for n, s in EXPECTED.items() if n != "hang"}
