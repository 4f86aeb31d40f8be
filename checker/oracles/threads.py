"""Small problems on one torch thread.

torch parallelises even a 32 x 32 matrix product over its intra-op threads; when another process
holds a core, those threads wait on each other and a 30-microsecond product takes 50 milliseconds.
Below ``SMALL`` elements the oracles run torch on one thread (and put the setting back after).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SMALL", "torch_threads_for"]

SMALL = 2**17


@contextmanager
def torch_threads_for(elements: int) -> Iterator[None]:
    """One torch thread for a problem of fewer than :data:`SMALL` elements; unchanged otherwise."""
    import torch

    before = torch.get_num_threads()
    if elements >= SMALL or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
