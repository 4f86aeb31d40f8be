"""One job: lend each sandbox a uid that no other process on this machine runs as (grader as root).

When the grader is root, bwrap is started as an unprivileged uid, so that the sandbox is built with
unprivileged user namespaces and the kernel enforces ``RLIMIT_NPROC``. That uid must belong to one
sandbox alone. The kernel lets any process signal (``kill(-1)`` included) or ptrace any other process of
the same real uid, in whatever namespace it runs, and counts ``RLIMIT_NPROC`` per uid across all user
namespaces. With one shared uid (it was 65534, ``nobody``), anything else running as it reached every
sandbox on the machine: another backprop-check whose clean-up kills every process of its sandbox uid
(the design before bubblewrap did exactly that), a daemon running as ``nobody``, an admin's
``pkill -u nobody``. Honest students' runs then ended as ``crashed (SIGKILL)``.

So each sandbox leases its own uid from ``SANDBOX_UIDS``:

- the range lies above the 16-bit ids that distributions and systemd hand out (users up to 60000,
  systemd's DynamicUser 61184-65519, ``nobody`` 65534; the old design took 65471-65534) and below
  100000, where shadow-utils starts the ``/etc/subuid`` ranges of rootless containers;
- a uid is held by an exclusive ``flock`` on ``<uid>.lock`` in a folder private to root
  (``/run/backprop-check-uids``, the folder the old design locked its uids in), so that graders in
  other processes (pytest-xdist, two CI jobs on one host) never share one; the kernel drops the lock
  if the grader dies, and its sandboxes die with it (``--die-with-parent``);
- a uid that has a passwd entry, or that any process on the machine runs as (real, effective, saved
  or filesystem uid, read from ``/proc/*/status``), is skipped: the range must be free, and that is
  checked each time rather than assumed.

The lease is held until bwrap has been reaped; by then its PID namespace is empty, or being emptied
by the kernel (whose dying processes keep that uid out of the next lease).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made on this machine; the message says why and what to do."""


__all__ = ["SANDBOX_UIDS", "SandboxUnavailable", "lease_uid", "lock_folder", "uids_in_use"]

SANDBOX_UIDS = range(69_000, 69_256)
LOCK_FOLDER_NAME = "backprop-check-uids"
_WAIT_S = 60.0  # how long a run waits for a free uid before it is that run's grader failure
_RETRY_S = 0.05


def lock_folder(base: Path | None = None) -> Path:
    """Root's private folder of per-uid lock files in ``base`` (``/run``, else the temporary folder),
    created on first use; raises ``SandboxUnavailable`` when it exists but is not a folder owned by
    root with mode 0700 (someone else could then hold or break the locks)."""
    if base is None:
        base = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
    folder = base / LOCK_FOLDER_NAME
    with suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise SandboxUnavailable(
            f"{folder} holds the locks of the sandbox uids and must be a folder private to root "
            f"(owner uid 0, mode 0700); it is owned by uid {info.st_uid} with mode "
            f"{stat.filemode(info.st_mode)}: remove it and grade again"
        )
    return folder


def uids_in_use() -> set[int]:
    """Every uid (real, effective, saved, filesystem) of every process on this machine."""
    found: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"Uid:"):
                        found.update(int(field) for field in line.split()[1:])
                        break
        except (OSError, ValueError):
            continue  # the process ended while we looked
    return found


@cache
def _has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _try_lock(folder: Path, uid: int) -> int | None:
    """An open descriptor holding the lock of ``uid``, or None when another lease holds it."""
    fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def lease_uid(uids: range = SANDBOX_UIDS, wait_s: float = _WAIT_S) -> Iterator[int]:
    """A uid of ``uids`` for one sandbox, held until the block ends. Raises ``RuntimeError`` when none
    has been free for ``wait_s`` seconds (that run's grader failure; the others go on)."""
    folder = lock_folder()
    deadline = time.monotonic() + wait_s
    while True:
        for uid in uids:
            if _has_passwd_entry(uid):
                continue
            fd = _try_lock(folder, uid)
            if fd is None:
                continue
            if uid in uids_in_use():  # checked under the lock: no other lease can start one now
                os.close(fd)
                continue
            try:
                yield uid
            finally:
                os.close(fd)  # releases the lock
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"no sandbox uid was free for {wait_s:g} s: all of {uids.start}-{uids.stop - 1} are "
                "leased by running sandboxes, named in /etc/passwd or used by other processes"
            )
        time.sleep(_RETRY_S)
