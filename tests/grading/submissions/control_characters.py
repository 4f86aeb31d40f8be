"""Raises an exception whose message is full of control characters that XML cannot hold."""

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    raise ValueError("broken\x00\x01\x08\x0b\x0c\x1b[31m\x7f\ud800 \r\n]]><x/>&amp; \"quoted\", =cmd|' /C calc'!A0")
