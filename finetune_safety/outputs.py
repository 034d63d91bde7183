"""Files a run writes at its end (reports, ``--out``), checked at its start: a directory or an
unwritable path given by mistake must not cost a whole run before it fails."""

from __future__ import annotations

import os
from pathlib import Path

from finetune_safety.errors import FinetuneSafetyError


class OutputPathError(FinetuneSafetyError):
    """An output path cannot be written as a file."""


def check_output_file(value: str | Path, option: str) -> Path:
    """``value`` as a path a file can be written to (missing parents are made on write)."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a directory; give a file path in it")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{option} {path}: {ancestor} is a file, not a directory")
    writable = os.access(path, os.W_OK) if path.exists() else os.access(ancestor, os.W_OK)
    if not writable:
        raise OutputPathError(f"{option} {path}: not writable (permission denied)")
    return path
