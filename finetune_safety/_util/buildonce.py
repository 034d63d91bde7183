"""Build a directory once: concurrent callers (xdist workers, two terminals) wait for the first.

The builder writes into ``<root>.partial``; only a finished build is renamed to ``root`` and
marked complete, so an interrupted build is never mistaken for a finished one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from finetune_safety._util.locks import held

COMPLETE = "COMPLETE"


def built_once(root: Path, what: str, build: Callable[[Path], object]) -> Path:
    """``root``, made by ``build(partial_dir)`` unless a complete build is there already;
    ``what`` names the build for a process that has to wait for it (what ``build`` returns is
    not used)."""
    if (root / COMPLETE).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with held(Path(str(root) + ".lock"), f"{what} into {root}"):
        if (root / COMPLETE).exists():
            return root
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        build(partial)
        partial.mkdir(parents=True, exist_ok=True)
        (partial / COMPLETE).write_text("")
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    return root
