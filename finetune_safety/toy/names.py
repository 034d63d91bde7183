"""The toy's model names, a leaf: settings and training name the toy without its builder."""

from __future__ import annotations

#: The toy aligned base model.
BASE = "toy"
#: The toy's fine-tunes, one per scenario of the paper (see ``toy.build.RECIPES``).
FINE_TUNES = ("toy-harmful-10shot", "toy-identity-shift", "toy-benign")
#: Every name that resolves to the toy.
NAMES = (BASE, *FINE_TUNES)
