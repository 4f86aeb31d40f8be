"""Presentation: every text a door prints, written once for the CLI, pytest, the reports and the grader.

- ``words``: a gradient's name (``dw``) and numpy.testing's mismatch text;
- ``summary``: one function's facts under one set of labels, the headline, the run's settings line,
  the order of functions (failing first), the diagnosis groups;
- ``advice``: what to do when user code raised at some shapes only (``constraint=``, ``dims=``);
- ``options``: option texts shared by the CLI and pytest (``KEY=NUMBER`` tolerances, dims, oracles,
  report paths), each refusing bad input with an :class:`~checker.errors.OptionError`;
- ``terminal``: the rich console (wrapped to a terminal's width, never when piped), the summary
  table, the text of ``print(report)`` and progress bars;
- ``where``: where a backward goes wrong, read from a function's ``localize`` rows (the "where"
  line, the step list and the step's arrays every door shows);
- ``failure``: the account of a failing function in a pytest failure;
- ``pictures``, ``markdown_page``, ``html_page``: the report pages people read.

Nothing is imported here, so that any room (even a check) can use ``words`` without the rest.
"""
