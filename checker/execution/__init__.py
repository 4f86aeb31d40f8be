"""The execution room: running the user's code in its registration style, here or in a sandbox.

- ``user_code``: what user code may raise, and the time limit on it (a leaf module);
- ``calls``: one call of a forward, a backward, a loss or a model, and reading what it returned;
- ``record``: :class:`~checker.execution.record.Execution`, everything one run produced, as data;
- ``in_process``: one case of a target run in this process (the grader builds the same record from
  a sandboxed worker's answers, in :mod:`checker.grading.executions`).

Nothing here judges: the runner (:mod:`checker.runner`) turns an Execution into check records.
"""
