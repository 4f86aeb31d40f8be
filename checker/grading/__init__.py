"""Grading untrusted submissions: the isolated worker (``sandbox``, ``worker``), the import rules
(``imports``), and the scoring built on them. Import the submodules you need; this package imports
nothing itself, so that ``python -I worker.py`` and the CLI stay cheap to start."""
