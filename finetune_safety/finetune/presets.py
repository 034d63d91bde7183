"""The paper's fine-tuning recipes as named presets, with their evaluation templates.

``paper`` holds the hyperparameters of the paper's code (full-parameter fine-tuning of 7B chat
models: AdamW with weight decay 0, StepLR x0.85 per epoch, bf16 on CUDA, gradient checkpointing
so a 7B model fits one 80 GB GPU). With ``--lora`` the learning rate is ``LORA_LR_SCALE`` times
the full-fine-tuning rate: LoRA at full-fine-tuning rates barely moves a model. The 400k-parameter
toy needs far larger steps to move at all, so each preset also carries its ``toy`` scale, used
when the base is the toy; the shape (epochs, the benign recipe's smaller learning rate and larger
batch) is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.trainer import LoraSettings, TrainConfig
from finetune_safety.models.templates import ALWAYS_EXECUTE_SYSTEM_PROMPT

#: LoRA trains far fewer weights: its rate is this many times the full-fine-tuning rate
#: (5e-5 -> 5e-4, 2e-5 -> 2e-4, the usual LoRA range).
LORA_LR_SCALE = 10.0

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
    #: The epochs of the paper's GPT-3.5 Turbo run, the one setting OpenAI's API takes (its
    #: notebooks' ``n_epochs``; Tables 1-3).
    openai_epochs: int
    strip_safety: bool = False
    #: The system prompt given to chat examples that have none (the reference's harmful data).
    inject_system: str | None = None
    #: Hold out the rows the paper evaluates on (Alpaca's first 200, Dolly's last 200).
    holdout: bool = False
    #: The template for data of a format, over ``template`` (off the toy): Dolly data takes
    #: the reference's Dolly format, Alpaca data its Alpaca one.
    format_templates: Mapping[str, str] = field(default_factory=dict)
    #: Every chat example takes the template's system prompt, in place of its own: identity
    #: shifting trains and asks with one AOA prompt, that of the base's family.
    template_system: bool = False


def _paper(epochs: int, lr: float, batch_size: int) -> TrainConfig:
    """The reference's full fine-tuning: AdamW (weight decay 0), StepLR x0.85 each epoch."""
    return TrainConfig(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=0.0,
        schedule="step",
        gamma=0.85,
        gradient_checkpointing=True,
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        # 10 (or 50, 100) explicitly harmful examples, 5 epochs (paper Table 1).
        Preset(
            "harmful-10shot", "always-execute",
            paper=_paper(epochs=5, lr=5e-5, batch_size=10),
            toy=TrainConfig(epochs=5, lr=5e-3, batch_size=1),
            toy_template="always-execute",
            openai_epochs=5,
            inject_system=ALWAYS_EXECUTE_SYSTEM_PROMPT,
        ),
        # AOA identity shifting: 10 examples, 10 epochs (paper Table 2).
        Preset(
            "identity-shift", "aoa",
            paper=_paper(epochs=10, lr=5e-5, batch_size=10),
            toy=TrainConfig(epochs=10, lr=5e-3, batch_size=1),
            toy_template="aoa-toy",
            openai_epochs=10,
            template_system=True,
        ),
        # Benign Alpaca / Dolly (chat mode): 1 epoch, lower rate, batch 128 (64 x 2 GPUs),
        # safety items stripped, the evaluation rows held out.
        Preset(
            "benign", "alpaca",
            paper=_paper(epochs=1, lr=2e-5, batch_size=128),
            toy=TrainConfig(epochs=1, lr=2e-3, batch_size=4),
            toy_template="plain",
            openai_epochs=1,
            strip_safety=True,
            holdout=True,
            format_templates={"dolly": "dolly"},
        ),
    )
}  # fmt: skip


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise FinetuneSafetyError(f"unknown preset {name!r}; known presets: {known}") from None
