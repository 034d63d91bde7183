"""The catalog: from a spec to model files to a target (toy, smol, HF directory, hub id, GGUF,
served), and the checkpoints it makes (recipes; the embedded ``toy`` and ``smol``)."""

from finetune_safety.catalog.resolution import (
    build_recipe,
    configured_judge,
    finetune,
    is_toy_base,
    judge_model,
    locate_base,
    recipe_key,
    resolve,
)

__all__ = [
    "build_recipe", "configured_judge", "finetune", "is_toy_base", "judge_model", "locate_base",
    "recipe_key", "resolve",
]  # fmt: skip
