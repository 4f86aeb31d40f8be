"""Run a command on a pseudo-terminal of a given size, as a person at a terminal would see it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

#: Variables that would make rich decide about the terminal by themselves.
_TERMINAL_VARIABLES = (
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "CI",
)
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_terminal(
    argv: list[str], *, columns: int = 100, cwd: Path | None = None, timeout: float = 300
) -> tuple[int, str]:
    """(exit code, everything written to the terminal, escape codes included)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_VARIABLES}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the other side closed: the process ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return process.wait(), b"".join(chunks).decode("utf-8", "replace")


def screen_lines(output: str) -> list[str]:
    """The lines as left on the screen: escape codes removed, each line's last redraw (after ``\\r``)."""
    text = _ESCAPE.sub("", output).replace("\r\n", "\n")
    return [line.split("\r")[-1] for line in text.split("\n")]


def without_escapes(output: str) -> str:
    return _ESCAPE.sub("", output)
