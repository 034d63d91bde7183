"""``finetune --out DIR``: a checkpoint directory written whole, once, and never mixed.

A checkpoint is written into ``.DIR.partial`` beside ``DIR`` and renamed to ``DIR`` only when it
is complete, so a run killed at any moment leaves nothing at ``DIR`` that looks like a
checkpoint; the next run into ``DIR`` removes what it left and says so. A non-empty ``DIR`` is
refused unless ``--overwrite``, which replaces it whole: no file of an earlier checkpoint (an
old adapter beside new full weights) survives beside the new one. A lock (``.DIR.lock``) stops
a second run into the same ``DIR`` at once, naming the process that holds it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from finetune_safety._util.locks import LockBusy, held
from finetune_safety._util.progress import emit
from finetune_safety.errors import LocatedError
from finetune_safety.models.target import METADATA_FILE


class OutDirError(LocatedError):
    """``--out`` cannot take the checkpoint: in use, not empty, or not a directory."""

    def __init__(self, message: str, out: Path) -> None:
        super().__init__(message, out, option="--out")


def beside(out: Path, suffix: str) -> Path:
    """``out``'s hidden sibling ``.NAME.suffix`` (same file system: a rename is atomic)."""
    return out.with_name(f".{out.name}.{suffix}")


def _absolute(out: Path) -> Path:
    """``out`` as one spelling for every run (``ckpt``, ``./ckpt``, ``/abs/ckpt``): the lock
    must be the same file for all of them. The name itself is kept, never a link's target."""
    path = Path(os.path.abspath(out))
    return path.parent.resolve() / path.name


def _listing(directory: Path) -> str:
    names = sorted(p.name for p in directory.iterdir())
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _check(out: Path, overwrite: bool, inputs: Iterable[Path]) -> None:
    """Refuse an ``out`` that is a file, or not empty (without ``overwrite``), or whose
    replacement would delete something other than a checkpoint ``finetune`` wrote."""
    if out.exists() and not out.is_dir():
        raise OutDirError("is a file; give a directory for the checkpoint", out)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise OutDirError(
            f"not empty ({_listing(out)}); give --overwrite to replace it whole, or choose "
            "another --out",
            out,
        )
    if not (out / METADATA_FILE).is_file():
        raise OutDirError(
            f"--overwrite replaces only a checkpoint finetune wrote (with {METADATA_FILE}); "
            f"this directory holds {_listing(out)}: remove it yourself or choose another --out",
            out,
        )
    for path in (_absolute(p) for p in inputs):
        if path == out or out in path.parents:
            raise OutDirError(
                f"holds {path}, which this run reads and --overwrite would delete; choose "
                "another --out",
                out,
            )


def _clean_leftovers(out: Path) -> None:
    """Remove what a killed run left beside ``out`` (this run holds the lock: no one else is
    writing them), naming each, so a half-written directory is never taken for anything."""
    for leftover in (beside(out, "partial"), beside(out, "old")):
        if leftover.exists():
            shutil.rmtree(leftover)
            emit(f"removed {leftover}, left by an interrupted finetune run into {out}")


@contextmanager
def written_whole(
    out: Path, overwrite: bool = False, inputs: Iterable[Path] = ()
) -> Iterator[Path]:
    """The directory to write the checkpoint into; on success it becomes ``out``, replacing
    what was there whole; on any failure it is removed and ``out`` is left as it was.

    ``inputs`` are the files the run reads (base, data): an ``out`` that holds one is refused.
    Raises ``OutDirError`` (one line naming ``--out``) before any work.
    """
    out = _absolute(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutDirError(f"cannot create its parent: {exc.strerror or exc}", out) from None
    if not os.access(out.parent, os.W_OK):
        raise OutDirError(f"cannot write in {out.parent}", out)
    with ExitStack() as stack:
        try:
            stack.enter_context(held(beside(out, "lock"), f"writing into {out}", wait=False))
        except LockBusy as busy:
            raise OutDirError(
                f"another finetune run ({busy.holder}) is writing a checkpoint here; wait for "
                "it to end or choose another --out",
                out,
            ) from None
        _check(out, overwrite, inputs)
        _clean_leftovers(out)
        partial = beside(out, "partial")
        partial.mkdir()
        try:
            yield partial
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        _swap_in(partial, out)


def _swap_in(partial: Path, out: Path) -> None:
    """``partial`` becomes ``out``; an earlier ``out`` goes whole (a kill between the two
    renames leaves ``.NAME.old`` and ``.NAME.partial``, which the next run removes)."""
    if out.exists():
        old = beside(out, "old")
        out.rename(old)
        partial.rename(out)
        shutil.rmtree(old)
    else:
        partial.rename(out)
