"""Backward calls sys.exit(0)."""

import sys

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    sys.exit(0)
