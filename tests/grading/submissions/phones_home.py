"""Tries to send the inputs to a server it controls (@PORT@ on this machine, filled in by the test)."""

import socket

import numpy as np


def affine_forward(x, w, b):
    try:
        with socket.create_connection(("127.0.0.1", int("@PORT@")), timeout=1) as connection:
            connection.sendall(x.tobytes())
        print("connected")
    except OSError as exc:
        print(f"no network: {type(exc).__name__}")
    return x @ w + b, (x, w, b)
