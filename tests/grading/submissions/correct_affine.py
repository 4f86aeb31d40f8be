"""A correct cs231n affine layer: the control submission every hostile case is run beside."""

import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def square_loss(x):
    """Loss style: 0.5 * sum(x**2) and its gradient."""
    return float(0.5 * np.sum(x**2)), {"x": x.copy()}
