"""The embedded toy aligned chat model and its fine-tunes: the default when no model is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finetune_safety.toy.build import RECIPES, ensure_toy
from finetune_safety.toy.names import BASE, NAMES

__all__ = ["BASE", "NAMES", "ToyCheckpoint", "ensure_toy", "toy_checkpoint"]


@dataclass(frozen=True)
class ToyCheckpoint:
    """Where a toy model's files are: the base directory and, for fine-tunes, the adapter."""

    base: Path
    adapter: Path | None


def toy_checkpoint(name: str, cache_dir: Path) -> ToyCheckpoint | None:
    """The toy checkpoint called ``name`` (built on first use), or None for other names."""
    if name not in NAMES:
        return None
    root = ensure_toy(cache_dir)
    return ToyCheckpoint(root / BASE, root / name if name in RECIPES else None)
