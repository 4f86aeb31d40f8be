"""Imported second: its affine_forward is shadowed; affine_backward uses a sibling module."""

import numpy as np
from shapes import flatten


def affine_forward(x, w, b):
    return np.zeros((x.shape[0], w.shape[1])), (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return (dout @ w.T).reshape(x.shape), flatten(x).T @ dout, dout.sum(axis=0)
