from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety._util.buildonce import COMPLETE, built_once


def test_builds_once_and_reuses(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        out.mkdir(parents=True)
        (out / "weights").write_text("w")

    root = tmp_path / "cache" / "thing"
    assert built_once(root, "building", build) == root
    assert built_once(root, "building", build) == root
    assert len(calls) == 1 and calls[0].name == "thing.partial"
    assert (root / "weights").read_text() == "w" and (root / COMPLETE).exists()


def test_interrupted_build_leaves_nothing_complete(tmp_path: Path) -> None:
    root = tmp_path / "thing"

    def fail(out: Path) -> None:
        out.mkdir()
        (out / "half").write_text("")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        built_once(root, "building", fail)
    assert not root.exists()

    def build(out: Path) -> None:
        out.mkdir()
        assert not (out / "half").exists()  # the partial directory starts empty

    built_once(root, "building", build)
    assert (root / COMPLETE).exists()
