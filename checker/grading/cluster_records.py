"""The records the grading engines share (``cluster.py`` and the modules it loads import them from here)."""

from __future__ import annotations

from dataclasses import dataclass

from checker.grading.records import SubmissionRun

__all__ = ["INSTALL_HINT", "INTERRUPTED", "RETRIES", "ClusterUnavailable", "Finished", "grader_failure"]

INTERRUPTED = "the grading was interrupted before this submission finished"
#: Runs of one submission after the first when the grader itself failed on it (not the student): both
#: engines retry, since such failures are the machine's (a full disk) or transient (CPython 3.11's
#: ``ast.parse`` raises a spurious SystemError when two threads parse at once, gh-106905).
RETRIES = 2
_GRADER_FAILED = "the grader failed: "
INSTALL_HINT = 'pip install -e ".[cluster]"'


class ClusterUnavailable(RuntimeError):
    """The cluster asked for cannot be used (Dask missing, scheduler unreachable, workers unfit)."""


@dataclass(frozen=True)
class Finished:
    """One submission done: its ``run``, or ``not_graded`` (why it was not graded) and no run."""

    index: int
    run: SubmissionRun | None
    not_graded: str = ""


def grader_failure(run: SubmissionRun) -> str:
    """What went wrong on the grader's side of ``run`` ("" when nothing did: the run is the student's)."""
    error = run.worker_error or ""
    return error.removeprefix(_GRADER_FAILED) if error.startswith(_GRADER_FAILED) else ""
