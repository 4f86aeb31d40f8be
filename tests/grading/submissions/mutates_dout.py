"""Correct gradients, but backward scales dout in place."""

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dout *= 1.0  # looks harmless
    dout += 1.0  # is not
    dout -= 1.0
    np.multiply(dout, 3.0, out=dout)
    dout /= 3.0
    dout[0, 0] = 100.0
    return None, x.T @ dout, dout.sum(axis=0)
