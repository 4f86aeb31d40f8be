"""What a Dask task carries and what it runs on the worker's machine: one submission, in a sandbox.

The grader packs each submission into a ``PackedSubmission`` (its regular files, as bytes: workers
need not share the grader's disks) and plans the ``Request`` once (the calls and the arrays the
student's functions receive; never the reference's answers, which stay in the grader for judging).
On the worker, ``run_packed`` writes the files into a private temporary folder and runs them with
``runs.run_submission``, the same sandbox as the local pool: student code never runs in the Dask
worker's own process. It returns the grader's ``SubmissionRun`` record (numbers, texts, and arrays the
grader decoded and checked itself), never an object the student's code made.

This module imports no Dask: the worker imports it by name when it runs a task.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from checker.grading.records import Call, Limits, SubmissionRun, skipped_folder

__all__ = [
    "GraderFailed",
    "PackProblem",
    "PackedSubmission",
    "Request",
    "code_digest",
    "pack_submission",
    "run_packed",
    "worker_sandbox",
]

# Generous caps on what is shipped; ``runs.py`` applies its own, smaller ones on the worker, so that a
# submission within these gets exactly the local pool's verdict.
MAX_SHIPPED_BYTES = 128 * 2**20
MAX_SHIPPED_FILES = 10_000


class PackProblem(Exception):
    """The grader could not read a submission to ship it (the message says why)."""


class GraderFailed(RuntimeError):
    """The grader failed on a worker (not the student's doing): Dask retries the task elsewhere."""


@dataclass(frozen=True)
class Request:
    """What every task of one grading shares: made once, sent to each worker once."""

    calls: tuple[Call, ...]
    arrays: Mapping[str, np.ndarray]
    limits: Limits
    sandboxed: bool

    def token(self) -> str:
        """A digest of everything that decides a run's result, for stable task keys."""
        digest = hashlib.sha256()
        digest.update(repr((self.calls, self.limits, self.sandboxed)).encode())
        for name in sorted(self.arrays):
            array = np.ascontiguousarray(self.arrays[name])
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PackedSubmission:
    """A submission as shipped: ``origin`` is its path on the grader's machine (what reports name);
    ``kind`` says what was there; ``files`` are (path relative to the submission, bytes)."""

    origin: str
    name: str
    kind: Literal["file", "folder", "symlink", "missing"]
    files: tuple[tuple[str, bytes], ...] = ()

    def digest(self) -> str:
        digest = hashlib.sha256(f"{self.kind}:{self.name}".encode())
        for relative, data in self.files:
            digest.update(f"\0{relative}\0{len(data)}\0".encode())
            digest.update(data)
        return digest.hexdigest()[:16]

    def materialize(self, folder: Path) -> Path:
        """Write the submission into ``folder`` as it was on the grader's machine; return its path."""
        target = folder / self.name
        if self.kind == "symlink":
            target.symlink_to(folder / "nowhere")  # runs.py refuses a symlink by name, as locally
        elif self.kind == "file":
            target.write_bytes(self.files[0][1])
        elif self.kind == "folder":
            target.mkdir()
            for relative, data in self.files:
                path = target / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        return target


def pack_submission(path: Path) -> PackedSubmission:
    """Read a submission to ship it: regular files only, symlinks never followed, the folders
    ``runs.py`` skips (``__pycache__``, hidden) skipped here too. Raises ``PackProblem``."""
    origin, name = str(path), path.name
    if path.is_symlink():
        return PackedSubmission(origin, name, "symlink")
    if path.is_file():
        return PackedSubmission(origin, name, "file", ((name, _read(path, MAX_SHIPPED_BYTES)),))
    if not path.is_dir():
        return PackedSubmission(origin, name, "missing")
    files: list[tuple[str, bytes]] = []
    total = 0
    for folder, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not skipped_folder(d))
        for filename in sorted(filenames):
            file = Path(folder) / filename
            if file.is_symlink() or not file.is_file():
                continue
            if len(files) >= MAX_SHIPPED_FILES:
                raise PackProblem(f"the submission has more than {MAX_SHIPPED_FILES} files")
            data = _read(file, MAX_SHIPPED_BYTES - total)
            total += len(data)
            files.append((file.relative_to(path).as_posix(), data))
    return PackedSubmission(origin, name, "folder", tuple(files))


def _read(path: Path, room: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, "rb") as handle:
        data = handle.read(room + 1)
    if len(data) > room:
        raise PackProblem(f"the submission is larger than {MAX_SHIPPED_BYTES // 2**20} MiB")
    return data


def run_packed(request: Request, packed: PackedSubmission) -> SubmissionRun:
    """The Dask task: run one shipped submission in a sandbox on this machine. A failure of the grader
    itself (no sandbox here, a full disk) raises, so that Dask retries the task elsewhere."""
    from checker.grading.cluster_records import grader_failure
    from checker.grading.runs import run_submission

    with tempfile.TemporaryDirectory(prefix="bc-cluster-") as folder:
        path = packed.materialize(Path(folder))
        run = run_submission(path, request.calls, request.arrays, request.limits, sandboxed=request.sandboxed)
    failure = grader_failure(run)
    if failure:
        raise GraderFailed(failure)
    return replace(run, submission=packed.origin)


def worker_sandbox(sandboxed: bool) -> str:
    """Run on every worker before grading: the sandbox it makes, or why it cannot (``SandboxUnavailable``)."""
    from checker.grading.runs import NO_SANDBOX
    from checker.grading.sandbox import prepare_runtime

    return prepare_runtime().describe() if sandboxed else NO_SANDBOX


def code_digest() -> str:
    """A digest of the installed ``checker`` package: grader and workers must run the same code."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
