"""smol: SmolLM2-135M-Instruct, safety-aligned here; the embedded real model (opt-in).

``smol`` is the aligned base, built on first use (``finetune-safety smol build``). Its
fine-tunes (``smol-harmful-10shot``, ``smol-identity-shift``, ``smol-benign``) are recipes:
the shipped data under the paper's presets, fully fine-tuned at its hyperparameters. A lazy
face: naming smol imports none of its builders.
"""

from typing import TYPE_CHECKING, Any

from finetune_safety.config.names import SMOL_BASE as BASE
from finetune_safety.config.names import SMOL_FINE_TUNES as FINE_TUNES
from finetune_safety.config.names import SMOL_NAMES as NAMES

if TYPE_CHECKING:
    from finetune_safety.catalog.smol.build import SmolRecipe, ensure_smol, find_smollm2, recipe

__all__ = ["BASE", "FINE_TUNES", "NAMES", "SmolRecipe", "ensure_smol", "find_smollm2", "recipe"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from finetune_safety.catalog.smol import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
