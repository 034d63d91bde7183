"""Fixtures of the store tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Makes a file read-only as a user sees it (root writes any file: there, ``os.access``
    says so instead)."""

    def make(path: Path) -> None:
        if os.geteuid() == 0:
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, m: m != os.W_OK and real(p, m))
        else:
            path.chmod(0o444)

    return make
