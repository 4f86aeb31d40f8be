"""Behaviour kept: the harness's records and the grader's scores equal the saved snapshots (all but the
``seconds`` columns). A change meant to alter behaviour regenerates them: ``python -m tests.golden --write``."""

from __future__ import annotations

import pytest

from tests import golden


@pytest.mark.parametrize("name", list(golden.SNAPSHOTS))
def test_records_and_scores_equal_the_saved_snapshot(name):
    found = golden.differences(name, golden.SNAPSHOTS[name]())
    assert not found, "\n".join(found)
