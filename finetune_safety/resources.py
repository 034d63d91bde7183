"""Locate the data files the project ships (``fixtures/``) in a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def fixtures_dir() -> Path:
    """A wheel carries ``fixtures/`` as ``finetune_safety/_fixtures``; a checkout has it beside."""
    installed = _PACKAGE / "_fixtures"
    return installed if installed.is_dir() else _PACKAGE.parent / "fixtures"
