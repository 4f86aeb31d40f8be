"""Shared fixtures: small user modules written the way people write them, correct and buggy."""

from __future__ import annotations

import numpy as np
import pytest

import checker as bc

# Hostile and broken student submissions live here; they are run by the grading tests, never collected.
collect_ignore = ["grading/submissions"]


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


@pytest.fixture
def affine_spec():
    """The keyword arguments of a correct affine registration (name it yourself)."""
    return {
        "forward": affine_forward,
        "backward": affine_backward,
        "inputs": {"x": "N,D", "w": "D,M", "b": "M"},
        "torch_forward": lambda x, w, b: x @ w + b,
    }


def failing(report):
    """The failing rows of a report's frame."""
    frame = report.frame
    return frame[frame.status.isin(["fail", "error"])]


__all__ = ["affine_backward", "affine_forward", "bc", "failing", "np"]
