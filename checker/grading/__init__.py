"""Grading untrusted submissions. Execution: ``runtime`` (what a sandbox holds), ``sandbox`` (make an
isolated process and end it), ``worker`` / ``worker_values`` (the child side, numpy and stdlib only),
``frames`` (decode what a worker sent, trusting nothing), ``runs`` (one submission end to end).
Judging goes through the harness's one runner: ``plan`` (cases and the reference's answers),
``executions`` (a worker's answers read as an Execution), ``scoring`` (the runner's rows -> points);
feedback that says where a backward goes wrong: ``worker_trace`` (the child side of an unscored
trace call), ``traced_steps`` (its answer, checked), ``localization`` (judged against the reference's
intermediates, the hint); ``grade`` and ``outputs`` total and write; ``imports`` is the friendly import check. This package imports nothing itself, so that the worker and the CLI stay cheap to start."""
