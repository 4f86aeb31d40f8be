"""Backward adds into a gradient kept in the cache: right the first time, doubled the second."""

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, {"x": x, "w": w, "b": b, "dw": np.zeros_like(w)}


def affine_backward(dout, cache):
    cache["dw"] += cache["x"].T @ dout
    return dout @ cache["w"].T, cache["dw"], dout.sum(axis=0)
