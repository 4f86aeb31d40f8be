"""One job: start a command in a fresh bubblewrap sandbox, feed it, drain it, and end it entirely.

``run_isolated(runtime, command, stdin, submission, limits, on_result)`` starts ``command`` (a Python
command line, run by the runtime's interpreter) in a sandbox made for this run only:

- new user, PID, IPC, network, mount and UTS namespaces (``--unshare-all --unshare-user``), nested user
  namespaces disabled, every capability dropped, ``PR_SET_NO_NEW_PRIVS``, a new terminal session;
- a root filesystem that is an empty tmpfs holding, read-only, only the runtime (``runtime.py``: the
  interpreter, its standard library, numpy) and the submission at ``/submission``; its own ``/proc``,
  a minimal ``/dev``, a private ``/tmp`` and ``/dev/shm`` capped at ``Limits.tmpfs_mb`` each;
- a scrubbed environment (bwrap itself is started with an empty one, so nothing of the grader's
  environment is in the sandbox, not even in ``/proc/1/environ``);
- its end: when the command exits, times out, or floods the result pipe, bwrap is killed; its pid 1
  dies with it (``--die-with-parent``), and with pid 1 the kernel kills every process left in the PID
  namespace, including children that detached with ``setsid``. The tmpfs folders, IPC objects and
  network namespace go with it. Nothing of one run reaches the next.

When the grader is root, bwrap is started as a uid leased for this sandbox alone (``sandbox_uids.py``):
no process outside it runs as that uid, so none can signal, trace or count against its processes.

Memory, CPU time, file size and process count are rlimits that the worker sets on itself before any
student code runs (``RLIMIT_NPROC`` counts the processes of its uid, which only this sandbox has). The
sandbox judges nothing and decodes nothing: the result pipe's bytes go to ``on_result``.

``run_unsandboxed`` is the ``--no-sandbox`` path for trusted code: the same command in a plain
subprocess with a scrubbed environment and its own process group, and no isolation at all.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

from checker.grading.records import Limits
from checker.grading.runtime import PACKAGES, Runtime, SandboxUnavailable, build_runtime, remove_staged
from checker.grading.sandbox_uids import lease_uid

__all__ = [
    "SUBMISSION_DIR",
    "Excerpt",
    "Outcome",
    "prepare_runtime",
    "run_isolated",
    "run_unsandboxed",
    "verify",
]

SUBMISSION_DIR = "/submission"
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_EXIT_GRACE_S = 0.5  # after the command ends: how long its pipes may keep draining
_POLL_S = 0.1


class Excerpt:
    """The first ``limit`` bytes of a stream, and how many bytes it had in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


@dataclass
class Outcome:
    """How the run ended. ``returncode``: the command's exit code, or ``-N`` for signal N (bwrap reports
    a command killed by signal N as exit code 128 + N, which is read back as ``-N``). ``stopped``: why
    the grader ended it ("" when it ended by itself, else ``timeout`` or the ``on_result`` refusal)."""

    stdout: Excerpt
    stderr: Excerpt
    returncode: int
    timed_out: bool
    stopped: str
    seconds: float
    ended: float = 0.0  # time.monotonic() when the run was over


# ------------------------------------------------------------------------------------ bwrap's arguments


def _environment(runtime: Runtime | None, home: str) -> dict[str, str]:
    env = {"PATH": "/nonexistent", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    if runtime is not None and runtime.library_path:
        env["LD_LIBRARY_PATH"] = runtime.library_path
    return env


def bwrap_arguments(runtime: Runtime, submission: Path | None, limits: Limits) -> list[str]:
    """bwrap's options (without the command) for one sandbox."""
    tmpfs = str(limits.tmpfs_mb * 2**20)
    args = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    for name, value in _environment(runtime, "/tmp").items():
        args += ["--setenv", name, value]
    for source, target in runtime.binds:
        args += ["--ro-bind", source, target]
    for mask in runtime.masks:  # e.g. the interpreter's own site-packages: an empty, read-only folder
        args += ["--size", "4096", "--tmpfs", mask, "--remount-ro", mask]
    for target, link in runtime.symlinks:
        if not any(link == t or link.startswith(t.rstrip("/") + "/") for _, t in runtime.binds):
            args += ["--symlink", target, link]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", tmpfs, "--tmpfs", "/tmp", "--size", tmpfs, "--tmpfs", "/dev/shm"]
    if submission is not None:
        args += ["--ro-bind", str(submission), SUBMISSION_DIR]
    args += ["--remount-ro", "/", "--chdir", "/tmp"]  # only /tmp and /dev/shm stay writable
    return args


# ------------------------------------------------------------------------------------ running


def run_isolated(
    runtime: Runtime,
    command: Sequence[str],
    stdin: Path,
    submission: Path | None,
    limits: Limits,
    on_result: Callable[[bytes], str | None],
) -> Outcome:
    """Run ``command`` (its first item stands for the interpreter) in a new sandbox until it ends.

    The number of the result pipe's descriptor is appended to ``command``. ``stdin``: a file the command
    reads as its standard input (opened here, so the sandbox uid needs no access to it). ``on_result``
    gets the result pipe's bytes as they come and returns a reason to stop the run, or None."""
    options = ("\0".join(bwrap_arguments(runtime, submission, limits)) + "\0").encode()

    def argv(result_fd: int, args_fd: int) -> list[str]:
        return [
            runtime.bwrap,
            "--args",
            str(args_fd),
            "--",
            runtime.interpreter,
            *command[1:],
            str(result_fd),
        ]

    with lease_uid(runtime.uids) if runtime.uids else nullcontext(None) as uid:
        # bwrap starts with an empty environment and sets the sandbox's own (--clearenv, --setenv)
        return _run(argv, stdin, limits, on_result, {}, options, "/", uid)


def run_unsandboxed(
    command: Sequence[str], stdin: Path, limits: Limits, on_result: Callable[[bytes], str | None]
) -> Outcome:
    """``--no-sandbox``: the command as a plain subprocess of the grader's user. Trusted code only."""

    def argv(result_fd: int, _args_fd: int) -> list[str]:
        return [*command, str(result_fd)]

    home = tempfile.mkdtemp(prefix="bc-nosandbox-")
    try:
        return _run(argv, stdin, limits, on_result, _environment(None, home), None, home, None)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(
    argv: Callable[[int, int], list[str]],
    stdin: Path,
    limits: Limits,
    on_result: Callable[[bytes], str | None],
    env: dict[str, str],
    options: bytes | None,
    cwd: str,
    run_as: int | None,
) -> Outcome:
    """``options``: bwrap's, sent on a pipe (None: no sandbox); ``run_as``: the uid and gid to start the
    command as (None: the grader's own)."""
    start = time.monotonic()
    deadline = start + limits.timeout_s
    read_fd, write_fd = os.pipe()
    args_read, args_write = os.pipe() if options is not None else (-1, -1)
    try:
        with stdin.open("rb") as request:
            process = subprocess.Popen(
                argv(write_fd, args_read),
                stdin=request,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd, args_read) if options is not None else (write_fd,),
                cwd=cwd,
                env=env,
                start_new_session=True,
                user=run_as,
                group=run_as,
                extra_groups=[] if run_as is not None else None,
                umask=0o022,
            )
    except BaseException:
        os.close(read_fd)
        if args_write >= 0:
            os.close(args_write)
        raise
    finally:
        os.close(write_fd)
        if args_read >= 0:
            os.close(args_read)
    if options is not None:
        try:
            view = memoryview(options)
            while view:  # bwrap reads its options before it starts the command
                view = view[os.write(args_write, view) :]
        except BrokenPipeError:
            pass  # bwrap failed before reading them: its stderr says why
        finally:
            os.close(args_write)
    stdout, stderr = Excerpt(limits.max_log_bytes), Excerpt(limits.max_log_bytes)
    state = {"timed_out": False, "stopped": ""}
    try:
        _pump(process, read_fd, stdout, stderr, deadline, state, on_result)
    finally:
        _end(process)
        os.close(read_fd)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    code = process.returncode
    if options is not None and code > 128 and not state["stopped"]:
        code = -(code - 128)  # bwrap: killed by signal N -> exit code 128 + N
    ended = time.monotonic()
    return Outcome(stdout, stderr, code, state["timed_out"], state["stopped"], ended - start, ended)


def _pump(
    process: subprocess.Popen,
    read_fd: int,
    stdout: Excerpt,
    stderr: Excerpt,
    deadline: float,
    state: dict,
    on_result: Callable[[bytes], str | None],
) -> None:
    """Read the three pipes until they close, the deadline passes, or the result stream is refused."""
    assert process.stdout is not None and process.stderr is not None
    streams = {process.stdout.fileno(): stdout, process.stderr.fileno(): stderr}
    selector = selectors.DefaultSelector()
    for fd in (*streams, read_fd):
        selector.register(fd, selectors.EVENT_READ)
    ended_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                state["timed_out"], state["stopped"] = True, "timeout"
                return
            if ended_at is None and process.poll() is not None:
                ended_at = now
            if ended_at is not None and now - ended_at > _EXIT_GRACE_S:
                return
            for key, _ in selector.select(min(deadline - now, _POLL_S)):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    selector.unregister(key.fd)
                elif key.fd == read_fd:
                    refusal = on_result(data)
                    if refusal:
                        state["stopped"] = refusal
                        return
                else:
                    streams[key.fd].add(data)
    finally:
        selector.close()


def _end(process: subprocess.Popen) -> None:
    """SIGKILL bwrap and its process group; its pid 1 dies with it and takes the namespace along."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(ProcessLookupError):
        process.kill()
    process.wait()


# ------------------------------------------------------------------------------------ verification


_CHECK = (
    "import sys; sys.path.append(sys.argv[1]); import numpy; "
    "import os; os.write(int(sys.argv[2]), b'ok ' + numpy.__version__.encode())"
)


_lock = threading.Lock()
_prepared: Runtime | None = None


def prepare_runtime() -> Runtime:
    """The runtime of this process (made and verified once); raises ``SandboxUnavailable``."""
    global _prepared
    with _lock:
        if _prepared is None:
            runtime = build_runtime()
            try:
                verify(runtime)
            except SandboxUnavailable:
                remove_staged(runtime.staged)
                raise
            _prepared = runtime
        return _prepared


def verify(runtime: Runtime) -> None:
    """Make one sandbox and import numpy in it; raise ``SandboxUnavailable`` with the cause and the fix."""
    received = bytearray()

    def collect(data: bytes) -> str | None:
        received.extend(data)
        return None

    with tempfile.NamedTemporaryFile() as empty, _startable(runtime):
        outcome = run_isolated(
            runtime,
            ["python", "-I", "-S", "-B", "-c", _CHECK, PACKAGES],
            Path(empty.name),
            None,
            Limits(timeout_s=60, memory_mb=1024),
            collect,
        )
    if outcome.returncode == 0 and received.startswith(b"ok "):
        return
    raise SandboxUnavailable(explain_failure(runtime, outcome.stderr.text(), outcome.returncode))


@contextmanager
def _startable(runtime: Runtime) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise SandboxUnavailable(
            f"{runtime.bwrap} cannot be started: {exc}. If its folder is mounted noexec, set TMPDIR to a "
            "folder that allows programs (the runtime is staged there when the grader runs as root)."
        ) from None


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def explain_failure(runtime: Runtime, stderr: str, returncode: int) -> str:
    """Why bwrap could not make a sandbox here, and what to do about it."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    said = " / ".join(lines[-3:]) if lines else f"exit code {returncode}"
    causes = []
    if _sysctl("user.max_user_namespaces") == "0":
        causes.append(
            "user namespaces are disabled (user.max_user_namespaces = 0): `sysctl -w user.max_user_namespaces=15000`"
        )
    if _sysctl("kernel.unprivileged_userns_clone") == "0":
        causes.append(
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): "
            "`sysctl -w kernel.unprivileged_userns_clone=1`"
        )
    if _sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
        causes.append(
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1, "
            "Ubuntu 23.10+): `apt-get install bubblewrap` (the distribution's /usr/bin/bwrap has an AppArmor "
            "profile that allows it, and is used when it is on PATH) or "
            "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
        )
    namespaces = re.search(r"namespace|uid map|Operation not permitted|Permission denied", said)
    if not namespaces:
        causes.append("bwrap could not set the sandbox up; please report this with the line above")
    elif not causes:
        causes.append(
            "if this runs in a container, the container must allow user namespaces (Docker's default seccomp "
            "profile blocks them: run it with `--security-opt seccomp=unconfined`, or grade on a VM or CI runner)"
        )
    who = f" as uid {runtime.uids.start}-{runtime.uids.stop - 1}" if runtime.uids else ""
    return (
        f"no sandbox can be made for the submissions: {runtime.bwrap}{who} failed with: {said[:300]}. "
        + "; ".join(causes)
        + ". To grade trusted code without a sandbox (your own solutions, never students'), pass --no-sandbox."
    )
