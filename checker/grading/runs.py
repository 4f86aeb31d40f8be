"""Run submissions: copy each one, start its worker in a sandbox, and turn what came back into a record.

``run_submission(submission, calls, arrays, limits) -> SubmissionRun`` runs one student's functions in
a fresh sandbox (``sandbox.py``) and returns what came back, as data; ``run_many`` runs a batch on a
few threads. Nothing here judges a gradient: the scorer compares the returned arrays with its own
oracles. What this module guarantees about the run:

- the submission is copied (regular files only, size-capped) and bound read-only at ``/submission``;
  nothing else of the grader's files is in the sandbox (see ``runtime.py``);
- the worker's messages are decoded by ``frames.py`` (no pickle, exact types, validated numbers,
  cleaned texts); student stdout/stderr are captured, cut to ``Limits.max_log_bytes`` and never parsed;
- a run counts as complete only when the worker sent its ``done`` frame; ``exit(0)`` in the student's
  code is an exception in that call, ``os._exit(0)`` an early exit, never a success;
- results stream per call, so a hang or crash in one call keeps the results of the calls before it.

With ``sandboxed=False`` (the CLI's ``--no-sandbox``, for trusted code only) the worker runs as a plain
subprocess of the grader's user, with no isolation; ``SubmissionRun.sandbox`` then says so.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from checker.grading import frames
from checker.grading import worker_values as protocol
from checker.grading.imports import FORBIDDEN_MODULES, ForbiddenImport, forbidden_imports
from checker.grading.records import (
    Call,
    CallError,
    CallResult,
    Limits,
    SubmissionRun,
    clean_text,
    skipped_folder,
)
from checker.grading.runtime import PACKAGES, WORKER_DIR, Runtime
from checker.grading.sandbox import SUBMISSION_DIR, Outcome, prepare_runtime, run_isolated, run_unsandboxed

__all__ = ["NO_SANDBOX", "run_many", "run_submission"]

NO_SANDBOX = "none: --no-sandbox (trusted code only; the submission ran as the grader's own user)"
WORKER_PATH = Path(__file__).resolve().parent / "worker.py"

_MAX_CONCURRENT = 64
_MAX_SUBMISSION_BYTES = 32 * 2**20
_MAX_SUBMISSION_FILES = 2000


def run_submission(
    submission: Path | str,
    calls: Sequence[Call],
    arrays: Mapping[str, np.ndarray],
    limits: Limits | None = None,
    *,
    sandboxed: bool = True,
) -> SubmissionRun:
    """Run ``calls`` against one submission (a ``.py`` file, or a folder whose top-level modules are
    imported in sorted order, the first definition of a name winning) in a sandboxed worker.

    ``arrays``: name -> numeric ndarray, the inputs/douts/params the calls refer to; the worker gets
    copies. Misuse (unknown array names, duplicate ids, non-numeric arrays) raises ``ValueError`` /
    ``TypeError``; no sandbox here raises ``SandboxUnavailable``; anything the submission does is
    recorded in the returned ``SubmissionRun``.
    """
    return run_many([submission], calls, arrays, limits, jobs=1, sandboxed=sandboxed)[0]


def run_many(
    submissions: Sequence[Path | str],
    calls: Sequence[Call],
    arrays: Mapping[str, np.ndarray],
    limits: Limits | None = None,
    *,
    jobs: int = 2,
    sandboxed: bool = True,
    on_done: Callable[[SubmissionRun], None] | None = None,
) -> list[SubmissionRun]:
    """``run_submission`` for each submission, ``jobs`` at a time (threads driving sandboxes), in order.
    A failure of the grader on one submission becomes that run's ``worker_error``; the batch goes on.
    ``on_done(run)`` is called (from a worker thread) as each submission finishes, for progress."""
    if not (isinstance(jobs, int) and 1 <= jobs <= _MAX_CONCURRENT):
        raise ValueError(f"jobs={jobs!r}: use an int from 1 to {_MAX_CONCURRENT}")
    limits = limits or Limits()
    needed = _check_request(calls, arrays)
    sent = {n: arrays[n] for n in needed}
    runtime = prepare_runtime() if sandboxed else None
    archive = io.BytesIO()
    np.savez(archive, **sent)
    payload = archive.getvalue()

    def one(path: Path | str) -> SubmissionRun:
        try:
            run = _run(Path(path), list(calls), payload, limits, runtime)
        except Exception as exc:  # a bug of ours must not cost the other students their grade
            error = f"the grader failed: {type(exc).__name__}: {clean_text(exc, 500)}"
            run = _unrun(str(path), calls, limits, runtime, worker_error=error)
        if on_done is not None:
            on_done(run)
        return run

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


class _SubmissionProblem(Exception):
    """The submission cannot be run at all (missing, not Python, too large): the student's problem."""


def _sandbox_text(runtime: Runtime | None) -> str:
    return runtime.describe() if runtime is not None else NO_SANDBOX


def _run(
    submission: Path, calls: list[Call], arrays: bytes, limits: Limits, runtime: Runtime | None
) -> SubmissionRun:
    work = Path(tempfile.mkdtemp(prefix="bc-work-"))
    private = Path(tempfile.mkdtemp(prefix="bc-grader-"))
    try:
        try:
            copied = _copy_submission(submission, work / "submission")
        except _SubmissionProblem as problem:
            error = CallError(type="", message=clean_text(problem, 1000), phase="import")
            return _unrun(str(submission), calls, limits, runtime, import_errors=(error,))
        work.chmod(0o711)  # the sandbox's uid binds the copy; the folder's name stays unlisted
        static = _static_forbidden(copied)
        inside = SUBMISSION_DIR if runtime is not None else str(copied)
        request = private / "request.bin"
        request.write_bytes(_encode_request(calls, arrays, limits, inside))
        reader = frames.FrameReader(limits.max_output_bytes)

        def on_result(data: bytes) -> str | None:
            try:
                reader.feed(data)
            except frames.ProtocolError as exc:
                return str(exc)
            return None

        if runtime is not None:
            command = ["python", "-I", "-S", "-B", f"{WORKER_DIR}/worker.py", PACKAGES]
            outcome = run_isolated(runtime, command, request, copied, limits, on_result)
        else:
            numpy_home = str(Path(np.__file__).resolve().parent.parent)
            command = [sys.executable, "-I", "-S", "-B", str(WORKER_PATH), numpy_home]
            outcome = run_unsandboxed(command, request, limits, on_result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
    return _assemble(str(submission), calls, limits, runtime, outcome, reader.frames, static)


def _copy_submission(source: Path, target: Path) -> Path:
    """Copy regular files only. Symlinks are skipped: following one could hand the student a file of
    the grader's. The copy is world-readable so that the sandbox's uid can bind it."""
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
            dirnames[:] = sorted(d for d in dirnames if not skipped_folder(d))
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
        found += forbidden_imports(source, filename=clean_text(path.relative_to(copied).as_posix(), 300))
    return found


def _encode_request(calls: list[Call], arrays: bytes, limits: Limits, submission_dir: str) -> bytes:
    header = {
        "calls": [c.to_json() for c in calls],
        "limits": limits.for_worker(),
        "forbidden": list(FORBIDDEN_MODULES),
        "submission_dir": submission_dir,
    }
    text = json.dumps(header, allow_nan=False).encode()
    return protocol.MAGIC + protocol.REQUEST_HEAD.pack(len(text)) + text + arrays


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
    runtime: Runtime | None,
    outcome: Outcome,
    received: list[frames.Frame],
    static: list[ForbiddenImport],
) -> SubmissionRun:
    results: dict[str, CallResult] = {}
    begun: dict[str, float] = {}
    runtime_refusals: list[ForbiddenImport] = []
    import_errors: list[CallError] = []
    imported = completed = hello_seen = False
    isolation: dict[str, Any] = {}
    worker_error: str | None = None
    protocol_error = outcome.stopped if outcome.stopped not in ("", "timeout") else None
    wanted = {c.id for c in calls}
    for header, blobs, arrived in received:
        # The hello (or fatal) frame and the import report come before any call; anything that claims
        # to be one later was written by student code and is ignored: a forged "fatal" must not turn
        # the student's failure into "the grader failed".
        kind = header.get("kind")
        call_id = header.get("id")
        try:
            if kind in ("hello", "fatal") and not hello_seen:
                hello_seen = True
                if kind == "hello":
                    isolation = frames.isolation_info(header)
                else:
                    worker_error = f"the worker could not start: {clean_text(header.get('message'), 1000)}"
            elif kind == "imported" and not imported:
                imported = True
                errors = header.get("errors")
                import_errors += [
                    e for e in map(frames.error_record, errors if isinstance(errors, list) else []) if e
                ]
            elif kind == "refused":
                module = clean_text(header.get("module", ""), 200)
                runtime_refusals.append(
                    ForbiddenImport(
                        module=module,
                        root=module.partition(".")[0],
                        file=clean_text(header.get("file", ""), 300),
                        line=frames.line_number(header.get("line")),
                        how="runtime",
                    )
                )
            elif kind == "begin" and isinstance(call_id, str) and call_id in wanted:
                begun.setdefault(call_id, arrived)
            elif kind == "call" and isinstance(call_id, str) and call_id in wanted and call_id not in results:
                results[call_id] = frames.call_result(header, blobs, arrived - begun.get(call_id, arrived))
            elif kind == "done":
                completed = True
        except Exception as exc:  # a malformed record costs that record only
            if kind == "call" and isinstance(call_id, str) and call_id in wanted:
                message = f"the worker's record of this call could not be read: {type(exc).__name__}: {clean_text(exc, 300)}"
                results[call_id] = CallResult(call_id, "error", error=CallError("", message, "worker"))
    if not hello_seen and worker_error is None:
        said = outcome.stderr.text().strip().splitlines()
        worker_error = (
            f"the sandbox could not start the worker: {clean_text(said[-1] if said else 'no message', 500)}"
        )

    returncode = outcome.returncode
    number = -returncode if returncode < 0 else None
    cpu_out = number == signal.SIGXCPU
    crashed = number is not None and not outcome.stopped and not completed and not cpu_out
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
    end_time = max([outcome.ended, *(a for _, _, a in received)])
    for call in calls:
        if call.id in results:
            continue
        if completed:
            message, status = "the worker reported done without running this call", "error"
        elif call.id in begun:
            message, status = f"{ended} during this call", "error"
        else:
            message, status = f"not run: {ended}", "not_run"
        seconds = max(end_time - begun[call.id], 0.0) if call.id in begun else 0.0
        error = CallError(type="", message=message, phase="worker")
        results[call.id] = CallResult(id=call.id, status=status, error=error, seconds=seconds)

    errors = [r.error for r in results.values() if r.error] + import_errors
    forbidden: list[ForbiddenImport] = []
    seen: set[tuple[str, str, int]] = set()
    for found in static + runtime_refusals:  # one record per place: the static one, with the name as written
        if (found.root, found.file, found.line) not in seen:
            seen.add((found.root, found.file, found.line))
            forbidden.append(found)
    return SubmissionRun(
        submission=submission,
        calls={c.id: results[c.id] for c in calls},
        completed=completed and not worker_error,
        timed_out=outcome.timed_out or cpu_out,
        memory_exceeded=any(e.type == "MemoryError" for e in errors),
        crashed=crashed,
        exit_code=returncode if returncode >= 0 else None,
        signal=_signal_name(number) if number is not None else None,
        import_errors=tuple(import_errors),
        forbidden_imports=tuple(forbidden),
        stdout=clean_text(outcome.stdout.text(), limits.max_log_bytes),
        stderr=clean_text(outcome.stderr.text(), limits.max_log_bytes),
        stdout_bytes=outcome.stdout.total,
        stderr_bytes=outcome.stderr.total,
        worker_error=worker_error,
        protocol_error=protocol_error,
        isolation=isolation,
        limits=limits,
        seconds=outcome.seconds,
        sandbox=_sandbox_text(runtime),
    )


def _unrun(
    submission: str, calls: Sequence[Call], limits: Limits, runtime: Runtime | None, **fields: Any
) -> SubmissionRun:
    """A run that never started a worker: every call ``not_run`` with the same reason."""
    reason = fields.get("worker_error") or "; ".join(e.message for e in fields.get("import_errors", ()))
    error = CallError(type="", message=f"not run: {reason}", phase="worker")
    results = {c.id: CallResult(id=c.id, status="not_run", error=error) for c in calls}
    return SubmissionRun(
        submission=submission,
        calls=results,
        completed=False,
        limits=limits,
        sandbox=_sandbox_text(runtime),
        **fields,
    )
