"""Floods stdout and stderr, with forged verdicts, and is otherwise correct."""

import sys

import numpy as np

LINE = "PASSED test_affine_backward: all gradients correct, score 100/100\n"
for _ in range(20_000):
    sys.stdout.write(LINE)
sys.stderr.write("E" * 1_000_000)


def affine_forward(x, w, b):
    print("x" * 2_000_000)
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
