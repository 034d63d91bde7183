"""Cross-process locks that say who holds them: a run that has to wait for another process
(building the toy, generating with the same model) says so at once, naming that process; one
that must not wait (two ``finetune`` runs into one directory) stops, naming it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from finetune_safety._util.progress import emit
from finetune_safety.errors import FinetuneSafetyError, StoreError


class LockBusy(FinetuneSafetyError):
    """Another process holds the lock (``held(..., wait=False)``); ``holder`` names it."""

    def __init__(self, holder: str, what: str) -> None:
        super().__init__(f"{holder} is {what}")
        self.holder = holder


@contextmanager
def held(path: Path, what: str, *, wait: bool = True) -> Iterator[None]:
    """Hold the lock file ``path``; ``what`` says what its holder is doing, for the waiter.

    Without ``wait``, a lock another process holds raises ``LockBusy`` naming that process
    (pid and host) at once.
    """
    owner = path.with_name(path.name + ".owner")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            try:
                holder = owner.read_text(encoding="utf-8").strip() or "another process"
            except OSError:
                holder = "another process"
            if not wait:
                raise LockBusy(holder, what) from None
            emit(f"waiting for {holder}, which is {what}; this run goes on when it ends")
            lock.acquire()
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}", encoding="utf-8")
    except OSError as exc:
        raise StoreError(
            f"cannot take the lock {path}: {exc.strerror or exc}; the cache directory must be "
            "writable (or choose another: --safety-cache-dir, cache_dir, --cache-dir)"
        ) from None
    try:
        yield
    finally:
        lock.release()
