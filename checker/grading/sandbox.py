"""The grader side of the isolated worker: spawn it, limit it, time it out, read its results back.

``run_submission(submission, calls, arrays, limits) -> SubmissionRun`` runs one student's functions
in a fresh ``python -I -B worker.py`` process and returns what came back, as data; ``run_many`` runs
a batch on a few threads. Nothing here judges a gradient: the scorer compares the returned arrays
with its own oracles. What this module guarantees about those arrays and the run:

- Nothing from the worker is unpickled or trusted. Results arrive as framed JSON + ``.npy`` bytes on
  a dedicated pipe; every header is size-checked before numpy reads it, and an array reaches the
  scorer only as a plain ``float64`` / ``int64`` / ``bool`` ``numpy.ndarray`` built here. Anything
  else (a list, None, a string, an object or complex array, an ndarray or float64 *subclass*)
  becomes a ``Value`` with ``array=None`` and an ``error`` that says what was found.
- Student stdout/stderr are captured on pipes, cut to ``Limits.max_log_bytes`` (the total is
  counted) and never parsed: a printed "PASSED" changes nothing.
- A run counts as complete only when the worker sent its ``done`` frame; ``exit(0)`` in the
  student's code is an exception in that call, ``os._exit(0)`` an early exit, never a success.
- Results stream per call, so a hang or crash in one call keeps the results of the calls before it.

Isolation. The worker sets its own limits (RLIMIT_AS, CPU, FSIZE, CORE, NPROC) before it imports the
submission, runs in its own session (``start_new_session=True``) from a fresh temporary directory with
a scrubbed environment (no grader secrets), and its whole process group is killed when it finishes
or times out. When the grader runs as root the worker drops to an unprivileged uid (``SANDBOX_UID``,
65534 = nobody; concurrent runs take 65533, 65532, ... so that one submission cannot signal
another's worker), the submission is copied into a directory that uid owns, and after the run every
process of that uid is killed (this also catches a child that escaped with ``setsid``). Those uids
must therefore be dedicated to grading. The grader's output folder is then protected by ordinary
file permissions: it must not be writable by that uid (a root-owned ``0755`` folder is fine).

When the grader does *not* run as root there is no uid boundary: the student's code runs as the
grader's own user and can write wherever that user can, and can signal the grader. The worker's
fresh cwd and the scrubbed environment only hide paths. Graders that run unprivileged must write
their report at the end, atomically, into a folder they created after the runs (or verify it), and
should run inside a container; CI grading should run as root in a throwaway container.
"""

from __future__ import annotations

import fcntl
import io
import json
import math
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from checker.grading import worker as protocol
from checker.grading.imports import FORBIDDEN_MODULES, ForbiddenImport, forbidden_imports
from checker.grading.records import (
    Call,
    CallError,
    CallResult,
    Limits,
    Returned,
    SubmissionRun,
    Value,
    article,
)

__all__ = [
    "SANDBOX_GID",
    "SANDBOX_UID",
    "Call",
    "CallError",
    "CallResult",
    "Limits",
    "Returned",
    "SubmissionRun",
    "Value",
    "run_many",
    "run_submission",
]

SANDBOX_UID = 65534  # nobody; concurrent runs use SANDBOX_UID - 1, - 2, ... (see the module docstring)
# One grader machine runs at most this many workers at once (uids SANDBOX_UID - 63 .. SANDBOX_UID).
SANDBOX_GID = 65534
WORKER_PATH = Path(protocol.__file__).resolve()

_MAX_CONCURRENT = 64
_MAX_SUBMISSION_BYTES = 32 * 2**20
_MAX_SUBMISSION_FILES = 2000
_MAX_HEADER_BYTES = 16 * 2**20
_EXIT_GRACE_S = 0.5  # after the worker ends: how long stdout/stderr may keep draining
_POLL_S = 0.1


# ------------------------------------------------------------------------------------ public entry


def run_submission(
    submission: Path | str,
    calls: Sequence[Call],
    arrays: Mapping[str, np.ndarray],
    limits: Limits | None = None,
) -> SubmissionRun:
    """Run ``calls`` against one submission (a ``.py`` file, or a folder whose top-level modules are
    imported in sorted order, the first definition of a name winning) in an isolated worker.

    ``arrays``: name -> numeric ndarray, the inputs/douts/params the calls refer to; the worker gets
    copies. Misuse (unknown array names, duplicate ids, non-numeric arrays) raises ``ValueError`` /
    ``TypeError``; anything the submission does is recorded in the returned ``SubmissionRun``.
    """
    limits = limits or Limits()
    needed = _check_request(calls, arrays)
    return _run(Path(submission), list(calls), {n: arrays[n] for n in needed}, limits)


def run_many(
    submissions: Sequence[Path | str],
    calls: Sequence[Call],
    arrays: Mapping[str, np.ndarray],
    limits: Limits | None = None,
    *,
    jobs: int = 2,
) -> list[SubmissionRun]:
    """``run_submission`` for each submission, ``jobs`` at a time (threads driving subprocesses), in order.
    A failure of the grader on one submission becomes that run's ``worker_error``; the batch goes on."""
    if not (isinstance(jobs, int) and 1 <= jobs <= _MAX_CONCURRENT):
        raise ValueError(f"jobs={jobs!r}: use an int from 1 to {_MAX_CONCURRENT}")
    limits = limits or Limits()
    needed = _check_request(calls, arrays)
    sent = {n: arrays[n] for n in needed}

    def one(path: Path | str) -> SubmissionRun:
        try:
            return _run(Path(path), list(calls), sent, limits)
        except Exception as exc:  # a bug of ours must not cost the other students their grade
            return _unrun(
                str(path), calls, limits, worker_error=f"the grader failed: {type(exc).__name__}: {exc}"
            )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, submissions))


def _check_request(calls: Sequence[Call], arrays: Mapping[str, np.ndarray]) -> list[str]:
    if not calls or not all(isinstance(c, Call) for c in calls):
        raise TypeError("calls must be a non-empty sequence of Call")
    ids = [c.id for c in calls]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"call ids must be unique; repeated: {duplicates}")
    needed: list[str] = []
    for call in calls:
        for name in call.array_names():
            if name not in arrays:
                raise ValueError(
                    f"Call(id={call.id!r}) uses array {name!r}, which is not in arrays ({sorted(arrays)})"
                )
            if name not in needed:
                needed.append(name)
    for name in needed:
        array = arrays[name]
        if type(array) is not np.ndarray or array.dtype.kind not in "biuf":
            raise TypeError(f"arrays[{name!r}] must be a numeric numpy.ndarray, got {type(array).__name__}")
    return needed


# ------------------------------------------------------------------------------------ one run


@dataclass(frozen=True)
class _Identity:
    uid: int
    gid: int


def _uid_lock_folder() -> Path:
    """Root's private folder of per-uid lock files (``/run/backprop-check-uids`` when /run is writable)."""
    base = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
    folder = base / "backprop-check-uids"
    with suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise RuntimeError(f"{folder} must be a folder private to root (mode 0700); remove it and retry")
    return folder


@contextmanager
def _sandbox_identity() -> Iterator[_Identity | None]:
    """A sandbox uid that no other worker on this machine is using (root only; None otherwise).

    The uid is held with an flock on a lock file, so graders in other processes (pytest-xdist, two CI
    jobs on one host) never share a uid: sharing one would let a submission signal another's worker,
    and the kill-every-process-of-the-uid sweep would end the other run.
    """
    if os.geteuid() != 0:
        yield None
        return
    folder = _uid_lock_folder()
    for uid in range(SANDBOX_UID, SANDBOX_UID - _MAX_CONCURRENT, -1):
        fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield _Identity(uid, SANDBOX_GID)
        finally:
            os.close(fd)  # releases the lock
        return
    raise RuntimeError(f"more than {_MAX_CONCURRENT} submissions are running at once on this machine")


class _SubmissionProblem(Exception):
    """The submission cannot be run at all (missing, not Python, too large): the student's problem."""


def _run(submission: Path, calls: list[Call], arrays: dict[str, np.ndarray], limits: Limits) -> SubmissionRun:
    start = time.monotonic()
    with _sandbox_identity() as identity:
        work = Path(tempfile.mkdtemp(prefix="bc-work-"))
        private = Path(tempfile.mkdtemp(prefix="bc-grader-"))
        try:
            try:
                copied = _copy_submission(submission, work / "submission")
            except _SubmissionProblem as problem:
                error = CallError(type="", message=str(problem), phase="import")
                return _unrun(str(submission), calls, limits, import_errors=(error,))
            static = _static_forbidden(copied)
            if identity is not None:
                os.chown(work, identity.uid, identity.gid)
            request = private / "request.bin"
            request.write_bytes(_encode_request(calls, arrays, limits, identity, copied))
            outcome = _execute(request, work, limits, identity)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(private, ignore_errors=True)
    return _assemble(str(submission), calls, limits, identity, outcome, static, time.monotonic() - start)


def _copy_submission(source: Path, target: Path) -> Path:
    """Copy regular files only. Symlinks are skipped: following one as root could hand the student
    a file they may not read. The copy is world-readable so the sandbox uid can import it."""
    if source.is_symlink():
        raise _SubmissionProblem(
            f"the submission {source.name} is a symbolic link; submit a file or a folder"
        )
    if source.is_file():
        if source.suffix != ".py":
            raise _SubmissionProblem(f"the submission {source.name} is not a .py file or a folder")
        files = [(source, Path(source.name))]
    elif source.is_dir():
        files = []
        for folder, dirnames, filenames in os.walk(source, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
            for name in sorted(filenames):
                path = Path(folder) / name
                if path.is_file() and not path.is_symlink():
                    files.append((path, path.relative_to(source)))
    else:
        raise _SubmissionProblem(f"no submission found at {source}")
    if len(files) > _MAX_SUBMISSION_FILES:
        raise _SubmissionProblem(
            f"the submission has {len(files)} files; at most {_MAX_SUBMISSION_FILES} are accepted"
        )
    if sum(path.stat().st_size for path, _ in files) > _MAX_SUBMISSION_BYTES:
        raise _SubmissionProblem(f"the submission is larger than {_MAX_SUBMISSION_BYTES // 2**20} MiB")
    target.mkdir(mode=0o755)
    for path, relative in files:
        destination = target / relative
        destination.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as src, open(destination, "wb") as dst:
            shutil.copyfileobj(src, dst)
        destination.chmod(0o644)
    for folder, _, _ in os.walk(target):
        Path(folder).chmod(0o755)
    return target


def _static_forbidden(copied: Path) -> list[ForbiddenImport]:
    found: list[ForbiddenImport] = []
    for path in sorted(copied.rglob("*.py")):
        source = path.read_text(encoding="utf-8", errors="replace")
        found += forbidden_imports(source, filename=path.relative_to(copied).as_posix())
    return found


def _encode_request(
    calls: list[Call], arrays: dict[str, np.ndarray], limits: Limits, identity: _Identity | None, copied: Path
) -> bytes:
    header = {
        "calls": [c.to_json() for c in calls],
        "limits": limits.for_worker(),
        "identity": None if identity is None else {"uid": identity.uid, "gid": identity.gid},
        "forbidden": list(FORBIDDEN_MODULES),
        "submission_dir": str(copied),
    }
    text = json.dumps(header, allow_nan=False).encode()
    archive = io.BytesIO()
    np.savez(archive, **arrays)
    return protocol.MAGIC + protocol.REQUEST_HEAD.pack(len(text)) + text + archive.getvalue()


# ------------------------------------------------------------------------------------ the process


class _Excerpt:
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


class _ProtocolError(Exception):
    pass


class _FrameReader:
    """Splits the result pipe into (header, blobs) frames, refusing anything malformed or too large."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.total = 0
        self.frames: list[tuple[dict[str, Any], list[bytes]]] = []

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self.total > self.max_bytes:
            raise _ProtocolError(
                f"the worker sent more than {self.max_bytes} bytes (Limits.max_output_bytes)"
            )
        self.buffer += data
        prefix = len(protocol.MAGIC) + protocol.FRAME_HEAD.size
        while len(self.buffer) >= prefix:
            if bytes(self.buffer[: len(protocol.MAGIC)]) != protocol.MAGIC:
                raise _ProtocolError(
                    "a result frame does not start with the protocol magic (something else wrote to the result pipe)"
                )
            header_length, payload_length = protocol.FRAME_HEAD.unpack_from(self.buffer, len(protocol.MAGIC))
            if header_length > _MAX_HEADER_BYTES or prefix + header_length + payload_length > self.max_bytes:
                raise _ProtocolError(
                    f"a result frame announces {header_length + payload_length} bytes, over the limit"
                )
            end = prefix + header_length + payload_length
            if len(self.buffer) < end:
                return
            try:
                header = json.loads(bytes(self.buffer[prefix : prefix + header_length]))
            except (ValueError, RecursionError) as exc:
                raise _ProtocolError(f"a result frame header is not JSON: {exc}") from None
            sizes = header.get("blobs") if isinstance(header, dict) else None
            if not (isinstance(sizes, list) and all(type(s) is int and s >= 0 for s in sizes)):
                raise _ProtocolError("a result frame header has no valid blob list")
            if sum(sizes) != payload_length:
                raise _ProtocolError("a result frame's blobs do not add up to its payload")
            blobs, offset = [], prefix + header_length
            for size in sizes:
                blobs.append(bytes(self.buffer[offset : offset + size]))
                offset += size
            self.frames.append((header, blobs))
            del self.buffer[:end]


@dataclass
class _Outcome:
    frames: list[tuple[dict[str, Any], list[bytes]]]
    stdout: _Excerpt
    stderr: _Excerpt
    returncode: int
    timed_out: bool
    killed_by_us: bool
    protocol_error: str | None


def _worker_environment(work: Path) -> dict[str, str]:
    """A scrubbed environment: nothing of the grader's (CI tokens, paths) reaches the student."""
    env = {"PATH": os.defpath, "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(dict.fromkeys(protocol.THREAD_VARIABLES, "1"))
    return env


def _execute(request: Path, work: Path, limits: Limits, identity: _Identity | None) -> _Outcome:
    deadline = time.monotonic() + limits.timeout_s
    read_fd, write_fd = os.pipe()
    try:
        with request.open("rb") as stdin:
            process = subprocess.Popen(
                [sys.executable, "-I", "-B", str(WORKER_PATH), str(write_fd)],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                cwd=work,
                env=_worker_environment(work),
                start_new_session=True,
            )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    reader = _FrameReader(limits.max_output_bytes)
    stdout, stderr = _Excerpt(limits.max_log_bytes), _Excerpt(limits.max_log_bytes)
    state = {"timed_out": False, "killed": False, "protocol_error": None}
    try:
        _pump(process, read_fd, reader, stdout, stderr, deadline, state)
    finally:
        _kill_group(process.pid)
        process.wait()
        if identity is not None:
            _kill_every_process_of(identity)
            _remove_files_of(identity)
        os.close(read_fd)
        for stream in (process.stdout, process.stderr):
            stream.close()
    return _Outcome(
        reader.frames,
        stdout,
        stderr,
        process.returncode,
        state["timed_out"],
        state["killed"],
        state["protocol_error"],
    )


def _pump(
    process: subprocess.Popen,
    read_fd: int,
    reader: _FrameReader,
    stdout: _Excerpt,
    stderr: _Excerpt,
    deadline: float,
    state: dict[str, Any],
) -> None:
    """Read the three pipes until they close, the deadline passes, or the worker is gone for a moment."""
    streams = {process.stdout.fileno(): stdout, process.stderr.fileno(): stderr}
    selector = selectors.DefaultSelector()
    for fd in (*streams, read_fd):
        selector.register(fd, selectors.EVENT_READ)
    ended_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                state["timed_out"] = state["killed"] = True
                _kill_group(process.pid)
                return
            if ended_at is None and _has_exited(process):
                ended_at = now
                _kill_group(process.pid)  # children it left behind in its group
            if ended_at is not None and now - ended_at > _EXIT_GRACE_S:
                return  # an escaped child holds a pipe open; it is killed after we return
            if ended_at is None and reader.frames and reader.frames[-1][0].get("kind") == "done":
                ended_at = now  # done: it may linger for the grace period, then it is killed
            for key, _ in selector.select(min(deadline - now, _POLL_S)):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    selector.unregister(key.fd)
                elif key.fd == read_fd:
                    try:
                        reader.feed(data)
                    except _ProtocolError as exc:
                        state["protocol_error"] = str(exc)
                        state["killed"] = True
                        selector.unregister(read_fd)
                        _kill_group(process.pid)
                else:
                    streams[key.fd].add(data)
    finally:
        selector.close()


def _has_exited(process: subprocess.Popen) -> bool:
    """Whether the worker has exited, without reaping it: while it is an unreaped zombie its pid, and so
    its process group id, cannot be reused, so killing the group never hits a stranger."""
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


_SWEEP = """
import os, signal, sys, time
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)
# kill(-1) reports success whenever any other process exists, so it cannot say when it is done. One
# pass suffices on Linux (a fork racing with it is aborted by the pending SIGKILL); a few more are cheap.
for _ in range(3):
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        break
    time.sleep(0.002)
"""


def _kill_every_process_of(identity: _Identity) -> None:
    """kill(-1) from a process running as the sandbox uid: every process of that uid dies, including
    children that left the worker's process group (setsid). Root only; the uid is ours alone."""
    subprocess.run(
        [sys.executable, "-I", "-S", "-c", _SWEEP, str(identity.uid), str(identity.gid)],
        env={},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )


_SHARED_TEMPORARY_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")


def _remove_files_of(identity: _Identity) -> None:
    """Delete what the sandbox uid left at the top of the shared temporary folders, so that nothing
    passes from one student's run to the next through /tmp. (rmtree does not follow symlinks.)"""
    for folder in {*_SHARED_TEMPORARY_FOLDERS, tempfile.gettempdir()}:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != identity.uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


# ------------------------------------------------------------------------------------ decoding


def _load_npy(blob: bytes) -> np.ndarray:
    """A plain float64 / int64 / bool ndarray from ``.npy`` bytes; the header is checked against the
    byte count before numpy allocates anything (a forged shape cannot make the grader allocate)."""
    stream = io.BytesIO(blob)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise ValueError(f"dtype {dtype} is not numeric")
    if math.prod(shape) * dtype.itemsize != len(blob) - stream.tell():
        raise ValueError("the array's bytes do not match its header")
    array = np.load(io.BytesIO(blob), allow_pickle=False)
    if type(array) is not np.ndarray or array.shape != tuple(shape) or array.dtype != dtype:
        raise ValueError("the array read back differs from its header")
    target = np.float64 if dtype.kind == "f" else np.int64 if dtype.kind in "iu" else np.bool_
    return np.array(array, dtype=target, order="C", copy=True)


def _value(info: Any, blobs: list[bytes]) -> Value:
    """The scorer's view of one returned value; never raises."""
    if not isinstance(info, dict):
        return Value(type="?", array=None, error="could not be read (malformed record)")
    kind = str(info.get("type", "?"))[:200]
    family = info.get("family")
    try:
        parsed: np.dtype | None = np.dtype(str(info.get("dtype")))
        dtype = parsed.name
    except TypeError:
        parsed, dtype = None, str(info.get("dtype", ""))[:64]
    note = str(info.get("note", ""))[:300]
    if family == "none":
        return Value(type=kind, array=None, error="is None, expected a numpy array")
    if family not in ("ndarray", "numpy-scalar", "number"):
        detail = f" ({note})" if note else ""
        return Value(
            type=kind, array=None, error=f"is {article(kind)} {kind}, expected a numpy array{detail}"
        )
    if info.get("exact") is not True:
        message = f"is {article(kind)} {kind}, expected a plain numpy array: return np.asarray(...) of it"
        return Value(type=kind, array=None, error=message, dtype=dtype)
    if parsed is None or parsed.kind not in "biuf" or parsed.fields is not None:
        return Value(type=kind, array=None, error=f"has dtype {dtype}, expected a float array", dtype=dtype)
    index = info.get("blob")
    if type(index) is not int or not 0 <= index < len(blobs):
        reason = f": {note}" if note else ""
        return Value(type=kind, array=None, error=f"was not sent{reason}", dtype=dtype)
    try:
        array = _load_npy(blobs[index])
    except Exception as exc:
        return Value(type=kind, array=None, error=f"could not be read: {exc}", dtype=dtype)
    if list(array.shape) != info.get("shape"):
        return Value(
            type=kind, array=None, error="could not be read: its shape differs from its record", dtype=dtype
        )
    return Value(type=kind, array=array, dtype=dtype)


def _returned(info: Any, blobs: list[bytes]) -> Returned:
    if not isinstance(info, dict) or not isinstance(info.get("values"), list):
        return Returned("other", ("",), (Value(type="?", array=None, error="could not be read"),))
    values = tuple(_value(v, blobs) for v in info["values"])
    keys = [str(k)[:100] for k in info.get("keys", [])] if isinstance(info.get("keys"), list) else []
    keys = (keys + [str(i) for i in range(len(keys), len(values))])[: len(values)]
    structure = str(info.get("structure", "other"))[:20]
    return Returned(structure, tuple(keys), values)


def _error(info: Any) -> CallError | None:
    if not isinstance(info, dict):
        return None
    line = info.get("line")
    return CallError(
        type=str(info.get("type", ""))[:200],
        message=str(info.get("message", ""))[:1000],
        phase=str(info.get("phase", ""))[:40],
        file=str(info.get("file", ""))[:300],
        line=line if type(line) is int else 0,
        traceback=str(info.get("traceback", ""))[-8000:],
    )


def _named(info: Any, blobs: list[bytes]) -> dict[str, Value]:
    return {str(k)[:200]: _value(v, blobs) for k, v in info.items()} if isinstance(info, dict) else {}


def _call_result(header: dict[str, Any], blobs: list[bytes]) -> CallResult:
    status = header.get("status") if header.get("status") in ("ok", "error") else "error"
    outputs = header.get("outputs")
    seconds = header.get("seconds")
    optional = {
        name: (_value if name.startswith("loss") else _returned)(header[name], blobs)
        for name in ("loss", "loss_again", "gradients", "gradients_again")
        if header.get(name) is not None
    }
    return CallResult(
        id=str(header.get("id")),
        status=status,
        outputs=tuple(_value(v, blobs) for v in outputs) if isinstance(outputs, list) else (),
        inputs_after=_named(header.get("inputs_after"), blobs),
        douts_after=_named(header.get("douts_after"), blobs),
        hyper_after=_named(header.get("hyper_after"), blobs),
        error=_error(header.get("error")),
        seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0,
        **optional,
    )


# ------------------------------------------------------------------------------------ assembling


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _assemble(
    submission: str,
    calls: list[Call],
    limits: Limits,
    identity: _Identity | None,
    outcome: _Outcome,
    static: list[ForbiddenImport],
    seconds: float,
) -> SubmissionRun:
    results: dict[str, CallResult] = {}
    begun: list[str] = []
    runtime: list[ForbiddenImport] = []
    import_errors: list[CallError] = []
    imported = completed = False
    isolation: dict[str, Any] = {}
    worker_error: str | None = None
    protocol_error = outcome.protocol_error
    wanted = {c.id for c in calls}
    hello_seen = False
    for header, blobs in outcome.frames:
        # The hello (or fatal) frame and the import report come before any call; anything that claims
        # to be one later was written by student code and is ignored: a forged "fatal" must not turn
        # the student's failure into "the grader failed".
        kind = header.get("kind")
        call_id = header.get("id")
        try:
            if kind in ("hello", "fatal") and not hello_seen:
                hello_seen = True
                if kind == "hello":
                    isolation = {k: v for k, v in header.items() if k not in ("kind", "blobs")}
                else:
                    worker_error = f"the worker could not start: {str(header.get('message'))[:1000]}"
            elif kind == "imported" and not imported:
                imported = True
                errors = header.get("errors")
                import_errors += [e for e in map(_error, errors if isinstance(errors, list) else []) if e]
            elif kind == "refused":
                module = str(header.get("module", ""))[:200]
                line = header.get("line")
                runtime.append(
                    ForbiddenImport(
                        module=module,
                        root=module.partition(".")[0],
                        file=str(header.get("file", ""))[:300],
                        line=line if type(line) is int else 0,
                        how="runtime",
                    )
                )
            elif kind == "begin" and isinstance(call_id, str):
                begun.append(call_id)
            elif kind == "call" and isinstance(call_id, str) and call_id in wanted and call_id not in results:
                results[call_id] = _call_result(header, blobs)
            elif kind == "done":
                completed = True
        except Exception as exc:  # a malformed record costs that record only
            if kind == "call" and isinstance(call_id, str) and call_id in wanted:
                message = f"the worker's record of this call could not be read: {type(exc).__name__}: {exc}"
                results[call_id] = CallResult(call_id, "error", error=CallError("", message, "worker"))

    returncode = outcome.returncode
    number = -returncode if returncode < 0 else None
    cpu_out = number == signal.SIGXCPU
    crashed = number is not None and not outcome.killed_by_us and not completed and not cpu_out
    if outcome.timed_out:
        ended = f"the submission ran out of time (timeout_s={limits.timeout_s:g})"
    elif cpu_out:
        ended = f"the submission used up its CPU time (cpu_s={limits.for_worker()['cpu_s']})"
    elif protocol_error:
        ended = f"the worker's results could not be read: {protocol_error}"
    elif worker_error:
        ended = worker_error
    elif crashed:
        ended = f"the worker was killed by {_signal_name(number)} ({signal.strsignal(number) or ''})"
    else:
        ended = f"the worker process exited with code {returncode} (sys.exit or os._exit in the submission?)"
    if not imported and not completed and not worker_error:
        import_errors.append(
            CallError(type="", message=f"{ended} while the submission was being imported", phase="import")
        )
    for call in calls:
        if call.id in results:
            continue
        if completed:
            message, status = "the worker reported done without running this call", "error"
        elif call.id in begun:
            message, status = f"{ended} during this call", "error"
        else:
            message, status = f"not run: {ended}", "not_run"
        results[call.id] = CallResult(
            id=call.id, status=status, error=CallError(type="", message=message, phase="worker")
        )

    errors = [r.error for r in results.values() if r.error] + import_errors
    memory = any(e.type == "MemoryError" for e in errors)
    forbidden: list[ForbiddenImport] = []
    seen: set[tuple[str, str, int]] = set()
    for found in static + runtime:  # one record per place: the static one, with the name as written
        if (found.root, found.file, found.line) not in seen:
            seen.add((found.root, found.file, found.line))
            forbidden.append(found)
    user = (
        f"uid {identity.uid} (dropped from root)"
        if identity is not None
        else f"uid {os.getuid()} (not root: the grader's own user, no uid isolation)"
    )
    return SubmissionRun(
        submission=submission,
        calls={c.id: results[c.id] for c in calls},
        completed=completed and not worker_error,
        timed_out=outcome.timed_out or cpu_out,
        memory_exceeded=memory,
        crashed=crashed,
        exit_code=returncode if returncode >= 0 else None,
        signal=_signal_name(number) if number is not None else None,
        import_errors=tuple(import_errors),
        forbidden_imports=tuple(forbidden),
        stdout=outcome.stdout.text(),
        stderr=outcome.stderr.text(),
        stdout_bytes=outcome.stdout.total,
        stderr_bytes=outcome.stderr.total,
        worker_error=worker_error,
        protocol_error=protocol_error,
        user=user,
        isolation=isolation,
        limits=limits,
        seconds=seconds,
    )


def _unrun(submission: str, calls: Sequence[Call], limits: Limits, **fields: Any) -> SubmissionRun:
    """A run that never started a worker: every call ``not_run`` with the same reason."""
    reason = fields.get("worker_error") or "; ".join(e.message for e in fields.get("import_errors", ()))
    error = CallError(type="", message=f"not run: {reason}", phase="worker")
    results = {c.id: CallResult(id=c.id, status="not_run", error=error) for c in calls}
    return SubmissionRun(submission=submission, calls=results, completed=False, limits=limits, **fields)
