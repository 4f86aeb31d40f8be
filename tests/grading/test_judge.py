"""What the judge says about a whole run that produced nothing useful."""

from __future__ import annotations

import pytest

from checker.grading.records import Limits, SubmissionRun
from checker.grading.scoring import run_problem


@pytest.mark.parametrize(
    ("signal", "problem"),
    [
        ("SIGKILL", "timed out (limit 7 s wall clock)"),  # the grader's kill at the deadline
        ("SIGXCPU", "timed out (limit 3 s of CPU time)"),  # the kernel's, at RLIMIT_CPU
    ],
)
def test_a_timeout_names_the_limit_that_ended_the_run(signal, problem):
    run = SubmissionRun(
        submission="s", calls={}, completed=False, timed_out=True, signal=signal, limits=Limits(7, 2.5)
    )
    assert run_problem(run) == problem
