"""Locks that say who holds them (the waiting message itself is tested in test_evaluate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety._util.locks import held
from finetune_safety.errors import StoreError


def test_holder_is_recorded_and_the_lock_is_reentrant_after_release(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "x.lock"
    with held(path, "testing"):
        assert (tmp_path / "locks" / "x.lock.owner").read_text().startswith("pid ")
    with held(path, "testing"):
        pass


def test_a_lock_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(StoreError) as info, held(tmp_path / "blocker" / "x.lock", "testing"):
        pass
    assert str(info.value).startswith(f"cannot take the lock {tmp_path / 'blocker' / 'x.lock'}")
