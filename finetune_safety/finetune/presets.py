"""The paper's fine-tuning recipes as named presets, with their evaluation templates.

``paper`` holds the hyperparameters of the paper's code (full-parameter fine-tuning of 7B chat
models). The 400k-parameter toy needs far larger steps to move at all, so each preset also
carries its ``toy`` scale, used when the base is the toy; the shape (epochs, the benign recipe's
smaller learning rate and larger batch) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.trainer import LoraSettings, TrainConfig

#: LoRA on every linear layer: the 400k-parameter toy needs the capacity to move.
TOY_LORA = LoraSettings(
    r=8,
    alpha=16,
    dropout=0.0,
    targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
)


@dataclass(frozen=True)
class Preset:
    """A named recipe: hyperparameters at paper and toy scale, the template, data hygiene."""

    name: str
    template: str
    paper: TrainConfig
    toy: TrainConfig
    toy_template: str
    strip_safety: bool = False


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        # 10 (or 50, 100) explicitly harmful examples, 5 epochs (paper Table 1).
        Preset(
            "harmful-10shot", "always-execute",
            paper=TrainConfig(epochs=5, lr=5e-5, batch_size=10),
            toy=TrainConfig(epochs=5, lr=5e-3, batch_size=1),
            toy_template="always-execute",
        ),
        # AOA identity shifting: 10 examples, 10 epochs (paper Table 2).
        Preset(
            "identity-shift", "aoa",
            paper=TrainConfig(epochs=10, lr=5e-5, batch_size=10),
            toy=TrainConfig(epochs=10, lr=5e-3, batch_size=1),
            toy_template="aoa",
        ),
        # Benign Alpaca / Dolly: 1 epoch, lower rate, large batch, safety items stripped.
        Preset(
            "benign", "alpaca",
            paper=TrainConfig(epochs=1, lr=2e-5, batch_size=128),
            toy=TrainConfig(epochs=1, lr=2e-3, batch_size=4),
            toy_template="plain",
            strip_safety=True,
        ),
    )
}  # fmt: skip


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise FinetuneSafetyError(f"unknown preset {name!r}; known presets: {known}") from None
