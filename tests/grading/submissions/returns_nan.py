"""Backward returns NaN for dw."""

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, np.full(w.shape, np.nan), dout.sum(axis=0)
