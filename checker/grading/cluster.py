"""Where submissions run: the seam between grading and the machines that run the sandboxes.

One seam, two engines. An engine is given the submissions, the calls, the arrays and the limits, and
yields a ``Finished`` record per submission as each one finishes: the plain ``SubmissionRun`` of that
submission, or the reason it was *not graded* (the grading was interrupted, the submission ended every
Dask worker it ran on, the grader failed on it every time). Judging and reports stay in the grader.

- ``LocalPool`` (the default): a few threads on this machine, each driving one sandbox at a time.
- ``DaskEngine`` (``cluster_dask.py``, ``--scheduler``): one Dask task per submission on a cluster.

``collect_runs`` drives an engine, reports progress, and turns an interruption (Ctrl-C, or SIGTERM under
``Interrupts``) into "not graded" rows for what had not finished, so that the reports are complete.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from checker.grading.cluster_records import (
    INSTALL_HINT,
    INTERRUPTED,
    RETRIES,
    ClusterUnavailable,
    Finished,
    grader_failure,
)
from checker.grading.records import Call, CallError, CallResult, Limits, SubmissionRun, clean_text

__all__ = [
    "INTERRUPTED",
    "ClusterUnavailable",
    "Collected",
    "Engine",
    "Finished",
    "Interrupts",
    "LocalPool",
    "Progress",
    "collect_runs",
    "engine_for",
    "grader_failure",
    "not_graded_run",
    "parse_scheduler",
]


class Engine(Protocol):
    """Runs submissions somewhere and yields their ``Finished`` records as they finish."""

    description: str
    dashboard_link: str

    def sandbox(self, sandboxed: bool) -> str:
        """Check that the machines can make the sandbox (raise ``SandboxUnavailable`` if not); describe it."""
        ...

    def run(
        self,
        submissions: Sequence[Path],
        calls: Sequence[Call],
        arrays: Mapping[str, np.ndarray],
        limits: Limits,
        *,
        sandboxed: bool,
    ) -> Iterator[Finished]: ...

    def stop(self) -> None:
        """Start nothing more and end what runs, promptly (after an interruption)."""
        ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------------ the local pool


class LocalPool:
    """``jobs`` threads on this machine, each running one submission's sandbox at a time."""

    dashboard_link = ""

    def __init__(self, jobs: int = 2) -> None:
        if not (isinstance(jobs, int) and 1 <= jobs <= 64):
            raise ValueError(f"jobs={jobs!r}: use an int from 1 to 64")
        self.jobs = jobs
        #: runs (of different submissions and calls) that may go on at once: the hints' trace groups
        self.concurrent_runs = jobs
        self.description = f"local pool ({jobs} at a time)"
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def sandbox(self, sandboxed: bool) -> str:
        from checker.grading.cluster_task import worker_sandbox

        return worker_sandbox(sandboxed)

    def run(
        self,
        submissions: Sequence[Path],
        calls: Sequence[Call],
        arrays: Mapping[str, np.ndarray],
        limits: Limits,
        *,
        sandboxed: bool,
    ) -> Iterator[Finished]:
        from checker.grading.runs import run_submission

        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(len(submissions)):
            todo.put(index)
        done: queue.SimpleQueue[Finished] = queue.SimpleQueue()

        def work() -> None:
            while not self._stopping.is_set():
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                done.put(one(index))

        def one(index: int) -> Finished:
            attempts = 0
            while True:
                attempts += 1
                try:
                    run = run_submission(submissions[index], calls, arrays, limits, sandboxed=sandboxed)
                    failure = grader_failure(run)
                except Exception as exc:  # no sandbox after all, or a bug of ours
                    failure = f"{type(exc).__name__}: {clean_text(exc, 500)}"
                if not failure:
                    return Finished(index, run)
                if attempts > RETRIES or self._stopping.is_set():
                    return Finished(
                        index, None, f"the grader failed on it on every attempt ({attempts}): {failure}"
                    )

        # Daemon threads: after an interruption nothing waits for them (stop() ends their sandboxes).
        self._threads = [
            threading.Thread(target=work, name=f"backprop-check-grade-{i}", daemon=True)
            for i in range(min(self.jobs, len(submissions)))
        ]
        for thread in self._threads:
            thread.start()
        for _ in range(len(submissions)):
            yield done.get()

    def stop(self) -> None:
        self._stopping.set()
        deadline = time.monotonic() + 10.0
        while any(t.is_alive() for t in self._threads) and time.monotonic() < deadline:
            _end_own_sessions()
            for thread in self._threads:
                thread.join(0.2)

    def close(self) -> None:
        self._stopping.set()


def _end_own_sessions() -> None:
    """SIGKILL this process's children that lead their own session: the sandboxes (bwrap, or the
    ``--no-sandbox`` worker), which ``sandbox.py`` starts with ``start_new_session``. Nothing else of
    this process is a session leader. Each sandbox's PID namespace dies with its bwrap."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except OSError:
            continue
        pid, parent, session = int(entry), int(fields[1]), int(fields[3])
        if parent == me and session == pid:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------ choosing an engine


def parse_scheduler(text: str) -> tuple[str, int | str]:
    """``local:N`` -> ("local", N); ``tcp://host:8786`` or ``host:8786`` -> ("address", text);
    ``scheduler.json`` (a Dask scheduler file) -> ("file", text). Raises ``ValueError``."""
    text = text.strip()
    if text.startswith("local:"):
        count = text.partition(":")[2]
        if not (count.isdigit() and 1 <= int(count) <= 256):
            raise ValueError(
                f"--scheduler {text}: local:N needs N, the number of worker processes, from 1 to 256"
            )
        return "local", int(count)
    if text.endswith(".json"):
        if not Path(text).is_file():
            raise ValueError(f"--scheduler {text}: no such scheduler file")
        return "file", text
    if "://" in text or (text.rpartition(":")[2].isdigit() and text.rpartition(":")[0]):
        return "address", text
    raise ValueError(
        f"--scheduler {text!r}: give a Dask scheduler address (tcp://host:8786), a scheduler file "
        "(scheduler.json), or local:N to start N worker processes on this machine"
    )


def engine_for(scheduler: str | None, jobs: int = 2) -> Engine:
    """The local pool when ``scheduler`` is None, else a Dask engine (``ClusterUnavailable`` if it
    cannot be had)."""
    if scheduler is None:
        return LocalPool(jobs)
    kind, where = parse_scheduler(scheduler)
    try:
        from checker.grading.cluster_dask import DaskEngine
    except ImportError as exc:
        raise ClusterUnavailable(
            f"--scheduler needs Dask distributed, which is not installed ({exc}); install it with: "
            f"{INSTALL_HINT}"
        ) from None
    return DaskEngine(kind, where)


# ------------------------------------------------------------------------------------ interruptions


class Interrupts:
    """Makes SIGINT and SIGTERM interrupt only the running of submissions, and defer otherwise.

    While ``armed`` (``collect_runs`` arms it) a signal raises ``KeyboardInterrupt``; at any other time
    (planning, judging, writing the reports) it is only recorded, and ``collect_runs`` starts nothing if
    one came before it. ``signal`` is the first signal's number (0: none). Use in the main thread."""

    def __init__(self) -> None:
        self.signal = 0
        self.armed = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._saved[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._saved.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: object) -> None:
        self.signal = self.signal or number
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    @contextmanager
    def arm(self) -> Iterator[None]:
        if self.signal:
            raise KeyboardInterrupt
        self.armed = True
        try:
            yield
        finally:
            self.armed = False


# ------------------------------------------------------------------------------------ collecting


@dataclass
class Collected:
    """What came back: ``runs[i]`` for submission i (None when not graded), ``not_graded`` (i -> why),
    ``interrupted`` (the signal's name, ``SIGINT`` for a Ctrl-C without ``Interrupts``; "" if not)."""

    runs: list[SubmissionRun | None]
    not_graded: dict[int, str] = field(default_factory=dict)
    interrupted: str = ""


Progress = Callable[[int, int, int, int], None]  # (done, total, failed so far, the index that finished)


def collect_runs(
    engine: Engine,
    submissions: Sequence[Path],
    calls: Sequence[Call],
    arrays: Mapping[str, np.ndarray],
    limits: Limits,
    *,
    sandboxed: bool,
    progress: Progress | None = None,
    interrupts: Interrupts | None = None,
    on_run: Callable[[int, SubmissionRun], None] | None = None,
) -> Collected:
    """Run every submission on ``engine``; an interruption stops the engine and leaves the rest not graded.
    ``on_run(index, run)`` is called as each run arrives (the grader judges it while others run)."""
    collected = Collected([None] * len(submissions))
    done = failed = 0
    try:
        with interrupts.arm() if interrupts else nullcontext():
            for finished in engine.run(submissions, calls, arrays, limits, sandboxed=sandboxed):
                if finished.run is not None:
                    collected.runs[finished.index] = finished.run
                    failed += not finished.run.completed
                    if on_run:
                        on_run(finished.index, finished.run)
                else:
                    collected.not_graded[finished.index] = finished.not_graded
                    failed += 1
                done += 1
                if progress:
                    progress(done, len(submissions), failed, finished.index)
    except KeyboardInterrupt:
        collected.interrupted = (interrupts.name if interrupts else "") or "SIGINT"
        engine.stop()
    for index, run in enumerate(collected.runs):
        if run is None and index not in collected.not_graded:
            collected.not_graded[index] = INTERRUPTED
    return collected


def not_graded_run(
    submission: Path | str, calls: Sequence[Call], limits: Limits, sandbox: str, reason: str
) -> SubmissionRun:
    """The record of a submission that was not graded: no call ran, ``worker_error`` says why."""
    reason = clean_text(reason, 1000)
    error = CallError(type="", message=f"not graded: {reason}", phase="worker")
    return SubmissionRun(
        submission=str(submission),
        calls={c.id: CallResult(id=c.id, status="not_run", error=error) for c in calls},
        completed=False,
        worker_error=f"not graded: {reason}",
        limits=limits,
        sandbox=sandbox,
    )
