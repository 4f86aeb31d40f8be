"""A class of hostile and honest submissions, interleaved at --jobs 2, graded by the CLI as a separate
process: as the grader's own user (root in CI), and as an ordinary user. As root, the test creates a
throwaway user and runs the grader as it, with Debian's /usr/bin/python3 and the packages of this
environment made readable to it (pandas' ``__init__.py`` is that user's own file, so that an attack on
it would succeed without the sandbox). Not as root, the grader's own user *is* an ordinary user and the
throwaway variant is skipped."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.grading.test_sandbox import DAEMON_MARKER, SUBMISSIONS, _processes_with

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-of-the-ci"
FULL, ZERO = 5.0, 0.0
EXPECTED = {  # submission -> affine score (5 points): an attack that is contained changes nothing
    "honest_a": FULL,
    "kills_grader": FULL,
    "rewrites_outputs": FULL,
    "patches_pandas": FULL,
    "forges_pipes": FULL,
    "honest_b": FULL,
    "reads_secrets": FULL,
    "detached_daemon": FULL,
    "fills_tmp": FULL,
    "leaves_state": FULL,
    "reads_state": FULL,
    "nan_clock": FULL,
    "unbans_torch": ZERO,
    "reads_answer_key": ZERO,
    "honest_c": FULL,
    "reads_classmates": ZERO,
    "returns_zeros": ZERO,
    "control_characters": ZERO,
    "deep_nesting": ZERO,
}


def _plant(folder: Path, out_dir: Path, site: Path) -> list[str]:
    folder.mkdir()
    paths = []
    for name in EXPECTED:
        source = SUBMISSIONS / ("correct_affine.py" if name.startswith("honest") else f"{name}.py")
        text = source.read_text().replace("@OUT_DIR@", str(out_dir)).replace("@SITE_PACKAGES@", str(site))
        text = text.replace("@MARKER@", DAEMON_MARKER)
        path = folder / f"{name}.py"
        path.write_text(text)
        paths.append(str(path))
    return paths


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _mirror_site_packages(target: Path, uid: int, gid: int) -> Path:
    """This environment's site-packages for another user: symlinks when it can read them, hard links
    otherwise; pandas is a copy that the user owns."""
    from checker.grading.runtime import _reachable_by_others

    site = Path(np.__file__).resolve().parent.parent
    target.mkdir()
    readable = _reachable_by_others(str(site))
    for entry in site.iterdir():
        if entry.name.endswith(".pth") or entry.name.startswith("__editable__"):
            continue
        destination = target / entry.name
        if entry.name == "pandas":
            shutil.copytree(entry, destination, symlinks=True)
            for path in [destination, *destination.rglob("*")]:
                os.lchown(path, uid, gid)
        elif readable:
            destination.symlink_to(entry)
        elif entry.is_dir():
            shutil.copytree(entry, destination, symlinks=True, copy_function=os.link)
        else:
            os.link(entry, destination)
    return target


def _run_class(work: Path, python: str, site: Path, user: tuple[int, int] | None) -> dict:
    out_dir = work / "graded"
    paths = _plant(work / "class", out_dir, site)
    project = work / "project"
    if user is not None:
        for package in ("checker", "reference_impls"):
            shutil.copytree(ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
        python_path = f"{project}:{site}"
    else:
        python_path = str(ROOT)
    if user is not None:
        for path in [work, work / "class", *(work / "class").iterdir(), project, *project.rglob("*")]:
            os.lchown(path, *user)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": python_path,
        "HOME": str(work),
        "LC_ALL": "C.UTF-8",
        "BC_TEST_SECRET": SECRET,
    }
    command = [
        python,
        "-m",
        "checker.cli",
        "grade",
        *paths,
        "--jobs",
        "2",
        "--timeout",
        "30",
        "--out",
        str(out_dir),
    ]
    result = subprocess.run(
        command,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        user=user[0] if user else None,
        group=user[1] if user else None,
        extra_groups=[] if user else None,
    )
    written = _digest(out_dir) if out_dir.is_dir() else {}
    time.sleep(2.5)  # the rewrites_outputs daemon would have rewritten them by now
    return {"result": result, "out": out_dir, "written": written, "site": site}


@pytest.fixture(scope="module", params=["graders_own_user", "throwaway_user"])
def graded(request) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bc-class-"))
    work.chmod(0o755)
    name = None
    try:
        if request.param == "graders_own_user":
            yield {
                **_run_class(work, sys.executable, Path(np.__file__).resolve().parent.parent, None),
                "who": "own",
            }
            return
        if os.geteuid() != 0:
            pytest.skip(
                "the grader already runs as an ordinary user here; creating a throwaway user needs root"
            )
        python = "/usr/bin/python3"
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if version.returncode != 0 or version.stdout.strip() != str(sys.version_info[:2]):
            pytest.skip(
                f"{python} is missing or not Python {sys.version_info[0]}.{sys.version_info[1]} like this environment"
            )
        if shutil.which("useradd") is None:
            pytest.skip("useradd is not available to create a throwaway user")
        name = f"bc-grader-{os.getpid()}"
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
        )
        entry = pwd.getpwnam(name)
        user = (entry.pw_uid, entry.pw_gid)
        try:
            site = _mirror_site_packages(work / "site", *user)
        except OSError as exc:
            pytest.skip(f"this environment's packages cannot be made readable to another user: {exc}")
        yield {**_run_class(work, python, site, user), "who": name}
    finally:
        if name is not None:
            subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def test_the_class_is_graded_and_every_attack_changes_only_its_own_score(graded):
    result = graded["result"]
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "internal error" not in result.stderr
    scores = pd.read_csv(graded["out"] / "scores.csv")
    affine = scores[scores.exercise == "affine"].set_index("submission")["score"].to_dict()
    assert affine == EXPECTED
    assert set(scores.sandbox) == {scores.sandbox[0]} and scores.sandbox[0].startswith("bubblewrap ")


def test_outputs_are_not_rewritten_after_the_grader_exits(graded):
    assert graded["written"] and _digest(graded["out"]) == graded["written"]
    assert _processes_with(DAEMON_MARKER) == []


def test_the_graders_packages_are_unchanged(graded):
    site = graded["site"]
    init = (site / "pandas" / "__init__.py").read_text()
    assert "planted by patches_pandas" not in init
    assert not (site / "zz_bc_planted.pth").exists()


def test_no_secret_of_the_grader_reaches_any_output(graded):
    result = graded["result"]
    assert SECRET not in result.stdout + result.stderr
    for path in graded["out"].rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
