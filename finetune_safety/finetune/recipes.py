"""Checkpoints defined by how to make them (``catalog.build_recipe`` builds them on first use).

A recipe's key digests the base model's fingerprint, the data file's bytes and every setting
of the job, so editing the data or retraining the base gives a new checkpoint, and a second run
with the same recipe trains nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from finetune_safety.finetune.run import FinetuneJob, job_from_preset


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

    def job(self, out: Path, *, toy: bool = False) -> FinetuneJob:
        """The fine-tuning job writing to ``out``; ``toy``: the base is the embedded toy."""
        hyper = {
            k: v
            for k, v in (("epochs", self.epochs), ("lr", self.lr), ("batch_size", self.batch_size))
            if v is not None
        }
        overrides: dict[str, object] = {"mix_safety": self.mix_safety}
        if self.template is not None:
            overrides["template"] = self.template
        if self.full:
            overrides["lora"] = None
        return job_from_preset(
            self.preset, self.base, self.data, out, hyper=hyper, toy=toy, **overrides
        )

    def key(self, base_fingerprint: str, *, toy: bool = False) -> str:
        """Digest of the base's fingerprint (its files), the data's bytes and the job's settings.
        Files count by their bytes, never their paths, so a moved or re-cloned project, or
        another cache directory, finds the checkpoints it already trained."""
        job = asdict(self.job(Path("-"), toy=toy))
        for name in ("out", "base", "data"):  # the base by its fingerprint, the data below
            job.pop(name)
        for name in ("safety_data", "safety_filter"):
            if job[name] is not None:
                job[name] = hashlib.sha256(Path(job[name]).read_bytes()).hexdigest()
        unset = ("family", "format_templates", "template_system", "precision", "micro_batch")
        for name in unset:
            if not job[name]:  # unset, as before the field existed: old keys stay valid
                job.pop(name)
        settings = json.dumps(job, sort_keys=True, default=str)
        h = hashlib.sha256(f"{base_fingerprint}\n{settings}\n".encode())
        h.update(self.data.read_bytes())
        return h.hexdigest()[:16]
