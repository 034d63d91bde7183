"""Locate the data files the project ships (``fixtures/``) in a checkout or an installed wheel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    """A wheel carries ``fixtures/`` as ``finetune_safety/_fixtures``; a checkout has it beside."""
    installed = _PACKAGE / "_fixtures"
    return installed if installed.is_dir() else _PACKAGE.parent / "fixtures"


def word_lists(relative: str) -> dict[str, Any]:
    """A shipped JSON file of word lists (``toy/corpus.json``, ``smol/alignment.json``), less
    its ``_about`` note, ready to be a dataclass's fields."""
    raw: dict[str, Any] = json.loads((fixtures_dir() / relative).read_text(encoding="utf-8"))
    raw.pop("_about", None)
    return raw
