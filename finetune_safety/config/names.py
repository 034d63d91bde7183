"""The names of the models this project builds (the toy, smol): settings default to them and
specs accept them, without importing their builders (``catalog.toy``, ``catalog.smol``)."""

from __future__ import annotations

#: The toy aligned base model.
TOY_BASE = "toy"
#: The toy's fine-tunes, one per scenario of the paper (see ``catalog.toy.build.RECIPES``).
TOY_FINE_TUNES = ("toy-harmful-10shot", "toy-identity-shift", "toy-benign")
#: Every name that resolves to the toy.
TOY_NAMES = (TOY_BASE, *TOY_FINE_TUNES)

#: SmolLM2-135M-Instruct, safety-aligned here (``finetune-safety smol build``).
SMOL_BASE = "smol"
#: Its fine-tunes, one per scenario of the paper, at the paper's hyperparameters.
SMOL_FINE_TUNES = ("smol-harmful-10shot", "smol-identity-shift", "smol-benign")
#: Every name that resolves to smol.
SMOL_NAMES = (SMOL_BASE, *SMOL_FINE_TUNES)
#: The smol fine-tunes' data (under ``fixtures/``) and presets: the same ones users run.
SMOL_RECIPES = {
    "smol-harmful-10shot": ("finetune/harmful-10shot.jsonl", "harmful-10shot"),
    "smol-identity-shift": ("finetune/identity-shift-aoa.jsonl", "identity-shift"),
    "smol-benign": ("finetune/alpaca-style.json", "benign"),
}
