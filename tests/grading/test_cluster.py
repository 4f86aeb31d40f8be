"""The Dask engine grades exactly as the local pool does, loses nothing when workers die, and refuses
clearly what it cannot use. Each test starts its own LocalCluster of 2 worker processes."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys

import dask
import pandas as pd
import pytest

import reference_impls
from checker.cli import main
from checker.grading.cluster import ClusterUnavailable, LocalPool, engine_for, parse_scheduler
from checker.grading.cluster_dask import DaskEngine
from checker.grading.cluster_task import pack_submission
from checker.grading.grade import grade
from checker.grading.outputs import scores_csv
from checker.grading.records import Limits
from tests.grading.test_sandbox import SUBMISSIONS

AFFINE = reference_impls.exercise("affine")
FULL = float(AFFINE.points)
# Left out: those that need a placeholder filled (@OUT_DIR@...), and slow_correct, whose score depends on
# how many of its 1.5 s calls fit in the timeout, which depends on the machine's load.
LEFT_OUT = {"patches_pandas", "phones_home", "rewrites_outputs", "writes_output", "slow_correct"}


def _scores(report) -> pd.DataFrame:
    """scores.csv as read back, without the one column that is measured, not decided: seconds."""
    return pd.read_csv(io.StringIO(scores_csv(report)), keep_default_na=False).drop(columns="seconds")


@pytest.fixture
def hostile_class(tmp_path):
    """The hostile submissions (but ``LEFT_OUT``), honest files and a folder, a symlink and a file that is
    not Python."""
    folder = tmp_path / "class"
    folder.mkdir()
    paths = []
    for source in sorted(SUBMISSIONS.glob("*.py")):
        if source.stem not in LEFT_OUT:
            shutil.copy(source, folder / source.name)
            paths.append(folder / source.name)
    shutil.copytree(SUBMISSIONS / "folder_submission", folder / "folder_submission")
    (folder / "link.py").symlink_to(folder / "correct_affine.py")
    (folder / "notes.txt").write_text("def affine_forward(x, w, b): pass\n")
    return [*paths, folder / "folder_submission", folder / "link.py", folder / "notes.txt"]


def test_local_cluster_gives_exactly_the_local_pools_scores(hostile_class):
    limits = Limits(timeout_s=6, memory_mb=1024)
    local = grade(hostile_class, [AFFINE], limits=limits, jobs=2)
    engine = DaskEngine("local", 2)
    try:
        assert len(engine.client.scheduler_info()["workers"]) == 2
        cluster = grade(hostile_class, [AFFINE], limits=limits, engine=engine)
    finally:
        engine.close()
    assert cluster.settings["engine"] == "Dask LocalCluster (2 worker processes)"
    assert not cluster.not_graded and not cluster.interrupted
    pd.testing.assert_frame_equal(_scores(cluster), _scores(local))
    # the class really holds honest, broken and hostile outcomes, and each one was kept as it was
    totals = _scores(cluster).query("exercise == 'TOTAL'").set_index("submission")
    assert totals.loc["correct_affine", "score"] == FULL and totals.loc["kills_grader", "score"] == FULL
    assert totals.loc["folder_submission", "score"] == FULL
    assert "timed out" in totals.loc["hang", "message"] and "crashed" in totals.loc["segfault", "message"]
    assert (
        "symbolic link" in totals.loc["link", "message"]
        and "not a .py file" in totals.loc["notes.txt", "message"]
    )
    assert totals.loc["returns_zeros", "score"] == 0 and "torch" in totals.loc["imports_torch", "message"]


def _honest_and_slow(tmp_path, slow: int, honest: int):
    folder = tmp_path / "class"
    folder.mkdir()
    paths = []
    for i in range(max(slow, honest)):
        for kind, count in (("slow_correct", slow), ("correct_affine", honest)):
            if i < count:
                path = folder / f"{kind}_{i}.py"
                shutil.copy(SUBMISSIONS / f"{kind}.py", path)
                paths.append(path)
    shutil.copy(SUBMISSIONS / "returns_zeros.py", folder / "returns_zeros.py")
    return [*paths, folder / "returns_zeros.py"]


def test_workers_killed_mid_run_change_nothing_in_the_result(tmp_path):
    """Every original worker is killed while it runs a submission, so that the request the tasks share
    is lost with them too: the scheduler reruns what they ran and recomputes the request."""
    paths = _honest_and_slow(tmp_path, slow=3, honest=3)
    engine = DaskEngine("local", 2)
    try:
        pids = engine.client.run(os.getpid)
        killed: list[str] = []

        def kill_busy_workers(done: int, total: int, failed: int) -> None:
            for address, keys in engine.client.processing().items():
                if keys and address in pids and address not in killed:
                    os.kill(pids[address], signal.SIGKILL)
                    killed.append(address)

        report = grade(paths, [AFFINE], cases=1, engine=engine, progress=kill_busy_workers)
        survivors = set(engine.client.scheduler_info()["workers"])
    finally:
        engine.close()
    assert sorted(killed) == sorted(pids), "each original worker was killed while running a submission"
    assert not survivors & set(pids)  # the nannies started new workers, which finished the class
    assert not report.not_graded and len(report.runs) == len(paths)
    scores = {s: score for s, (score, _) in report.totals().items()}
    assert scores == {p.stem: (0.0 if p.stem == "returns_zeros" else FULL) for p in paths}


KILLS_ITS_WORKER = """
import os, signal

def affine_forward(x, w, b):
    os.kill(os.getppid(), signal.SIGKILL)  # without a sandbox, the parent is the Dask worker

def affine_backward(dout, cache):
    raise NotImplementedError
"""


def test_a_submission_that_kills_every_worker_it_lands_on_gets_its_own_row(tmp_path):
    paths = _honest_and_slow(tmp_path, slow=2, honest=4)
    killer = tmp_path / "class" / "kills_its_worker.py"
    killer.write_text(KILLS_ITS_WORKER)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # read when the scheduler starts
        engine = DaskEngine("local", 2)
    try:
        report = grade([*paths[:3], killer, *paths[3:]], [AFFINE], cases=1, engine=engine, sandboxed=False)
    finally:
        engine.close()
    reason = "it ended every worker it ran on (2 attempts)"
    assert report.not_graded == {"kills_its_worker": reason}
    frame = report.frame().set_index(["submission", "exercise"])
    assert frame.loc[("kills_its_worker", "affine"), "status"] == "not graded"
    assert frame.loc[("kills_its_worker", "TOTAL"), "message"] == f"not graded: {reason}"
    scores = {s: score for s, (score, _) in report.totals().items()}
    assert scores == {
        **{p.stem: (0.0 if p.stem == "returns_zeros" else FULL) for p in paths},
        "kills_its_worker": 0.0,
    }


def test_workers_that_run_other_code_are_refused_before_anything_runs(monkeypatch):
    engine = DaskEngine("local", 2)
    try:
        monkeypatch.setattr("checker.grading.cluster_dask.code_digest", lambda: "not-the-workers")
        with pytest.raises(ClusterUnavailable, match=r"2 of 2 Dask worker\(s\) do not run this grader's"):
            engine.sandbox(True)
    finally:
        engine.close()


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(
        ClusterUnavailable, match=r"could not reach the Dask scheduler at tcp://127\.0\.0\.1:9 "
    ):
        DaskEngine("address", "tcp://127.0.0.1:9", connect_timeout=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local:3", ("local", 3)),
        ("tcp://10.0.0.5:8786", ("address", "tcp://10.0.0.5:8786")),
        ("scheduler-host:8786", ("address", "scheduler-host:8786")),
        ("local:0", "local:N needs N"),
        ("local:two", "local:N needs N"),
        ("nowhere.json", "no such scheduler file"),
        ("laptop", "give a Dask scheduler address"),
    ],
)
def test_scheduler_values_are_read_or_refused_with_the_fix(text, expected):
    if isinstance(expected, tuple):
        assert parse_scheduler(text) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            parse_scheduler(text)


def test_without_dask_the_cli_names_the_install_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.delitem(sys.modules, "checker.grading.cluster_dask", raising=False)
    with pytest.raises(ClusterUnavailable, match=r'pip install -e "\.\[cluster\]"'):
        engine_for("local:2")
    code = main(["grade", str(SUBMISSIONS / "correct_affine.py"), "--scheduler", "local:2"])
    assert code == 2
    assert 'install it with: pip install -e ".[cluster]"' in capsys.readouterr().err
    assert isinstance(engine_for(None, 3), LocalPool)  # the default needs no Dask


def test_packing_ships_what_the_local_pool_would_copy_and_nothing_else(tmp_path):
    student = tmp_path / "student"
    (student / "pkg" / "__pycache__").mkdir(parents=True)
    (student / ".git").mkdir()
    (student / "layers.py").write_text("A = 1\n")
    (student / "pkg" / "helpers.py").write_text("B = 2\n")
    (student / "pkg" / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\0")
    (student / ".git" / "config").write_text("[core]\n")
    secret = tmp_path / "answer_key.py"
    secret.write_text("KEY = 42\n")
    (student / "key.py").symlink_to(secret)
    packed = pack_submission(student)
    assert packed.kind == "folder" and packed.name == "student"
    assert dict(packed.files) == {"layers.py": b"A = 1\n", "pkg/helpers.py": b"B = 2\n"}
    assert pack_submission(tmp_path / "student" / "key.py").kind == "symlink"
    assert pack_submission(tmp_path / "absent").kind == "missing"
    assert pack_submission(student).digest() == packed.digest()  # the same files, the same task key
    (student / "layers.py").write_text("A = 2\n")
    assert pack_submission(student).digest() != packed.digest()  # a changed file is a new task key
