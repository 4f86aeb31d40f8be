"""Correct, but takes a while in forward (to be running while others misbehave)."""

import time

import numpy as np


def affine_forward(x, w, b):
    time.sleep(1.5)
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
