"""The Dask engine grades exactly as the local pool does, loses nothing when workers die, and refuses
clearly what it cannot use. Each test starts its own LocalCluster of 2 worker processes."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

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

        def kill_busy_workers(done: int, total: int, last: str) -> None:
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


@pytest.fixture
def running_cluster(tmp_path):
    """A scheduler and a worker command with 2 worker processes, started as a course would (``dask
    scheduler`` / ``dask worker``), found through the scheduler file."""
    dask_cli = str(Path(sys.executable).parent / "dask")
    scheduler_file = tmp_path / "scheduler.json"
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}
    where = ["--scheduler-file", str(scheduler_file)]
    scheduler = subprocess.Popen(
        [dask_cli, "scheduler", *where, "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0"],
        env=env,
        **common,
    )
    workers = subprocess.Popen(
        [dask_cli, "worker", *where, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"], **common
    )
    try:
        yield scheduler_file, scheduler
    finally:
        for process in (workers, scheduler):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_an_existing_cluster_grades_from_its_scheduler_file(running_cluster, tmp_path):
    scheduler_file, _ = running_cluster
    for _ in range(600):  # the scheduler writes its file once it listens
        if scheduler_file.exists():
            break
        time.sleep(0.1)
    paths = _honest_and_slow(tmp_path, slow=0, honest=4)
    report = grade(paths, [AFFINE], cases=1, scheduler=str(scheduler_file))
    assert report.settings["engine"] == f"Dask cluster from {scheduler_file}"
    assert not report.not_graded
    assert {s: score for s, (score, _) in report.totals().items()} == {
        p.stem: (0.0 if p.stem == "returns_zeros" else FULL) for p in paths
    }


def test_a_lost_scheduler_leaves_a_complete_report(running_cluster, tmp_path):
    scheduler_file, scheduler = running_cluster
    for _ in range(600):
        if scheduler_file.exists():
            break
        time.sleep(0.1)
    paths = _honest_and_slow(tmp_path, slow=4, honest=2)

    def lose_the_scheduler(done: int, total: int, last: str) -> None:
        if done >= 1 and scheduler.poll() is None:
            os.killpg(scheduler.pid, signal.SIGKILL)
            scheduler.wait()

    engine = DaskEngine("file", str(scheduler_file), connect_timeout=5)
    try:
        report = grade(paths, [AFFINE], cases=1, engine=engine, progress=lose_the_scheduler)
    finally:
        engine.close()
    assert scheduler.returncode is not None
    graded = set(report.totals()) - set(report.not_graded)
    assert graded and report.not_graded  # what finished is kept, the rest says why it is missing
    assert all(reason.startswith("the cluster") for reason in report.not_graded.values()), report.not_graded
    assert len(report.runs) == len(paths)


def test_the_local_pool_retries_a_run_the_grader_failed_and_then_says_so(tmp_path, monkeypatch):
    from checker.grading import runs

    real = runs.run_submission
    calls: dict[str, int] = {}

    def flaky(submission, *args, **kwargs):  # the grader fails on "unlucky" every time, on "once" once
        name = Path(submission).stem
        calls[name] = calls.get(name, 0) + 1
        if name == "unlucky" or (name == "once" and calls[name] == 1):
            raise SystemError("AST constructor recursion depth mismatch (before=30, after=50)")
        return real(submission, *args, **kwargs)

    monkeypatch.setattr(runs, "run_submission", flaky)
    for name in ("once", "unlucky"):
        shutil.copy(SUBMISSIONS / "correct_affine.py", tmp_path / f"{name}.py")
    report = grade([tmp_path / "once.py", tmp_path / "unlucky.py"], [AFFINE], cases=1)
    assert calls == {"once": 2, "unlucky": 3}
    assert report.totals()["once"] == (FULL, FULL)
    assert report.not_graded == {
        "unlucky": "the grader failed on it on every attempt (3): SystemError: AST constructor recursion "
        "depth mismatch (before=30, after=50)"
    }
