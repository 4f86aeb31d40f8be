"""A student's conftest.py: pytest would load it as a plugin; the grader never imports it."""

raise SystemExit("this file must not be imported")
