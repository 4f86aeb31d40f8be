"""Grading untrusted submissions. Execution: ``runtime`` (what a sandbox holds), ``sandbox`` (make an
isolated process and end it), ``worker`` / ``worker_values`` (the child side, numpy and stdlib only),
``frames`` (decode what a worker sent, trusting nothing), ``runs`` (one submission end to end).
Judging and presentation: ``plan``, ``judge``, ``grade``, ``outputs``; ``imports`` is the friendly
import check. This package imports nothing itself, so that the worker and the CLI stay cheap to start."""
