# The hostile submissions are data, not tests: one of them is a student's test_*.py that exits at import.
collect_ignore = ["submissions"]
