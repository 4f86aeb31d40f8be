"""Backward dereferences a null pointer."""

import ctypes

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    ctypes.string_at(0)
    return None
