"""Backward tries to allocate 10 GB."""

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    workspace = np.ones(10 * 2**30 // 8)  # 10 GiB of float64
    return workspace, workspace, workspace
