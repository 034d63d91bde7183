"""smol: SmolLM2-135M-Instruct, safety-aligned here; the embedded real model (opt-in).

``smol`` is the aligned base, built on first use (``finetune-safety smol build``). Its
fine-tunes (``smol-harmful-10shot``, ``smol-identity-shift``, ``smol-benign``) are recipes:
the shipped data under the paper's presets, fully fine-tuned at its hyperparameters.
"""

from __future__ import annotations

from finetune_safety.finetune.recipes import Recipe
from finetune_safety.resources import fixtures_dir
from finetune_safety.smol.build import SmolRecipe, ensure_smol, find_smollm2
from finetune_safety.smol.names import BASE, FINE_TUNES, NAMES, RECIPES

__all__ = [
    "BASE",
    "FINE_TUNES",
    "NAMES",
    "SmolRecipe",
    "ensure_smol",
    "find_smollm2",
    "recipe",
]


def recipe(name: str) -> Recipe:
    """The recipe of the smol fine-tune ``name`` (one of ``FINE_TUNES``)."""
    data, preset = RECIPES[name]
    return Recipe(base=BASE, data=fixtures_dir() / data, preset=preset)
