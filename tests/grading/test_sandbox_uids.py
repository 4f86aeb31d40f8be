"""Each sandbox of a root grader runs as a uid no other process runs as: leased, skipped when taken.

These tests lease uids from ranges far above ``SANDBOX_UIDS`` (one range per test process), so that
they never take a uid from, nor start a process as a uid of, a grader running beside them.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from checker.grading.records import Limits
from checker.grading.runs import run_submission
from checker.grading.runtime import SandboxUnavailable
from checker.grading.sandbox_uids import SANDBOX_UIDS, lease_uid, lock_folder, uids_in_use
from tests.grading.test_sandbox import ARRAYS, CALLS, SUBMISSIONS

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="sandbox uids are leased only when the grader runs as root"
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spare_uids():
    """Two uids that no grader leases and no other test process uses (one range per process); their
    lock files go when the test ends."""
    start = 300_000 + 8 * (os.getpid() % 50_000)
    uids = range(start, start + 2)
    yield uids
    for uid in uids:
        (lock_folder() / f"{uid}.lock").unlink(missing_ok=True)


def test_concurrent_leases_get_distinct_uids_from_the_sandbox_range():
    with lease_uid() as first, lease_uid() as second:
        assert first != second
        assert first in SANDBOX_UIDS and second in SANDBOX_UIDS
        assert 65534 not in (first, second)  # never nobody, whom daemons and other programs run as


def test_a_sandbox_never_gets_a_uid_that_is_leased_while_it_starts():
    with lease_uid() as held:
        run = run_submission(SUBMISSIONS / "correct_affine.py", CALLS[:1], ARRAYS, Limits(timeout_s=30))
    assert run.completed
    assert run.isolation["uid"] in SANDBOX_UIDS and run.isolation["uid"] != held


def test_a_uid_leased_by_another_grader_process_is_skipped(spare_uids):
    spare = spare_uids
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom checker.grading.sandbox_uids import lease_uid\n"
            f"with lease_uid(range({spare.start}, {spare.start + 1})) as uid:\n"
            "    print(uid, flush=True)\n"
            "    sys.stdin.read()\n",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == str(spare.start)
        with lease_uid(spare) as uid:
            assert uid == spare.start + 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    with lease_uid(spare) as uid:  # released when the holder ended
        assert uid == spare.start


def test_a_uid_that_any_process_runs_as_is_skipped(spare_uids):
    spare = spare_uids
    squatter = subprocess.Popen(["sleep", "600"], user=spare.start, group=spare.start, extra_groups=[])
    try:
        assert spare.start in uids_in_use()
        with lease_uid(spare) as uid:
            assert uid == spare.start + 1
    finally:
        squatter.kill()
        squatter.wait()


def test_uids_named_in_passwd_are_never_leased():
    with pytest.raises(RuntimeError, match="named in /etc/passwd"), lease_uid(range(0, 1), wait_s=0.2):
        pass  # uid 0 is root


def test_when_no_uid_is_free_the_lease_fails_after_waiting_and_says_why(spare_uids):
    spare = spare_uids[:1]
    with lease_uid(spare), pytest.raises(RuntimeError) as refused, lease_uid(spare, wait_s=0.3):
        pass
    assert str(refused.value).startswith(f"no sandbox uid was free for 0.3 s: all of {spare.start}-")


def test_the_lock_folder_is_made_private_to_root(tmp_path):
    info = lock_folder(tmp_path).lstat()
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o700


@pytest.mark.parametrize("kind", ["group and others can enter", "owned by nobody", "a symbolic link"])
def test_a_lock_folder_others_could_touch_is_refused(tmp_path, kind):
    folder = tmp_path / "backprop-check-uids"
    if kind == "a symbolic link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "elsewhere")
    else:
        folder.mkdir()
        folder.chmod(0o755 if kind == "group and others can enter" else 0o700)
        if kind == "owned by nobody":
            os.chown(folder, 65534, 65534)
    with pytest.raises(SandboxUnavailable, match="must be a folder private to root"):
        lock_folder(tmp_path)
