"""How many CPU threads torch may use. Its default (every core) thrashes on a busy or small
machine: 16 tokens took 161.6 s on a loaded 2-core box at the default and 13.9 s with one thread.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def share(threads: int) -> int:
    """This process's part of ``threads``: under pytest-xdist each of N workers gets 1/N."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    return max(1, threads // max(1, workers))


def apply(threads: int | None) -> int | None:
    """Set torch's thread count to this process's share of ``threads`` (None: leave it); works
    before torch is imported (the environment) and after (``torch.set_num_threads``)."""
    if threads is None:
        return None
    count = share(threads)
    for name in _ENV:
        os.environ[name] = str(count)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(count)
    return count


@contextmanager
def fixed_threads(count: int) -> Iterator[None]:
    """Run torch with ``count`` intra-op threads, then restore the caller's setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
