"""The smol model's names, a leaf: settings and the catalog name it without its builder."""

from __future__ import annotations

#: SmolLM2-135M-Instruct, safety-aligned here (``finetune-safety smol build``).
BASE = "smol"
#: Its fine-tunes, one per scenario of the paper, at the paper's hyperparameters.
FINE_TUNES = ("smol-harmful-10shot", "smol-identity-shift", "smol-benign")
#: Every name that resolves to smol.
NAMES = (BASE, *FINE_TUNES)
#: The fine-tunes' data (under ``fixtures/``) and presets: the same ones users run.
RECIPES = {
    "smol-harmful-10shot": ("finetune/harmful-10shot.jsonl", "harmful-10shot"),
    "smol-identity-shift": ("finetune/identity-shift-aoa.jsonl", "identity-shift"),
    "smol-benign": ("finetune/alpaca-style.json", "benign"),
}
