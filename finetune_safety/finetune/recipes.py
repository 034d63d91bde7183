"""Checkpoints defined by how to make them: built on first use, reused while nothing changes.

A recipe's key digests the base model's fingerprint, the data file's bytes and every setting
of the job, so editing the data or retraining the base gives a new checkpoint, and a second run
with the same recipe trains nothing. Concurrent xdist workers build it once (a file lock).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from finetune_safety.buildonce import built_once
from finetune_safety.finetune.run import FinetuneJob, job_from_preset
from finetune_safety.finetune.trainer import TrainConfig
from finetune_safety.models import ModelSpec


@dataclass(frozen=True)
class Recipe:
    """``[tool.finetune_safety.checkpoints.NAME]`` with ``base`` and ``data``: a preset and/or
    explicit hyperparameters (explicit ones win over the preset's)."""

    base: str
    data: Path
    preset: str | None = None
    template: str | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    mix_safety: int = 0
    full: bool = False

    def job(self, out: Path) -> FinetuneJob:
        hyper: dict[str, Any] = {
            k: v
            for k, v in (("epochs", self.epochs), ("lr", self.lr), ("batch_size", self.batch_size))
            if v is not None
        }
        overrides: dict[str, object] = {"mix_safety": self.mix_safety}
        if self.template is not None:
            overrides["template"] = self.template
        if self.full:
            overrides["lora"] = None
        if self.preset is None:
            overrides["train"] = TrainConfig(**hyper)
        job = job_from_preset(self.preset, self.base, self.data, out, **overrides)
        return replace(job, train=replace(job.train, **hyper)) if self.preset else job

    def key(self, base: str) -> str:
        """Digest of the base's fingerprint (its files), the data's bytes and the job's settings;
        ``catalog.recipe_key`` gives the base's."""
        job = asdict(self.job(Path("-")))
        job.pop("out")
        settings = json.dumps(job, sort_keys=True, default=str)
        h = hashlib.sha256(f"{base}\n{settings}\n".encode())
        h.update(self.data.read_bytes())
        return h.hexdigest()[:16]


def build(
    recipe: Recipe, cache_dir: Path, key: str, train: Callable[[FinetuneJob], Path]
) -> ModelSpec:
    """The recipe's checkpoint under ``key`` as a spec the suite can resolve, made by ``train``
    if needed (``catalog.build_recipe`` gives both)."""
    root = cache_dir / "checkpoints" / key
    built_once(root, "fine-tuning the recipe", lambda partial: train(recipe.job(partial)))
    if recipe.job(root).lora is None:  # full fine-tuning: the default off the toy
        return ModelSpec(model=str(root))
    return ModelSpec(adapter=str(root))
