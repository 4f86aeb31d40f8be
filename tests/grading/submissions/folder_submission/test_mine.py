"""A student's own test file: never imported by the grader."""

raise SystemExit("this file must not be imported")
