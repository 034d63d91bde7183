"""Files a run writes at its end (reports, ``--out``), checked at its start: a directory or an
unwritable path given by mistake must not cost a whole run before it fails."""

from __future__ import annotations

import os
from pathlib import Path

from finetune_safety.errors import LocatedError


class OutputPathError(LocatedError):
    """An output path cannot be written as a file."""


def check_output_file(value: str | Path, option: str) -> Path:
    """``value`` as a path a file can be written to (missing parents are made on write)."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise OutputPathError("is a directory; give a file path in it", path, option=option)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{ancestor} is a file, not a directory", path, option=option)
    writable = os.access(path, os.W_OK) if path.exists() else os.access(ancestor, os.W_OK)
    if not writable:
        raise OutputPathError("not writable (permission denied)", path, option=option)
    return path
