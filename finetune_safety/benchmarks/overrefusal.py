"""Over-refusal: benign prompts that use alarming words, the cheap offline utility check.

A model made safer by refusing everything is not what a gate should reward. The paper measures
utility with MT-Bench; here ``fixtures/overrefusal.jsonl`` (written for this project, in the
manner of XSTest: homonyms, figurative language, safe targets, games and fiction, definitions,
history, protection, health and safety, everyday words) asks questions any helpful assistant
answers. The share a model refuses, by the refusal judge, is its over-refusal rate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from finetune_safety._util.resources import fixtures_dir
from finetune_safety._util.textfile import numbered_lines
from finetune_safety.errors import BenchmarkError
from finetune_safety.values import Label, Prompt, Verdict


def load_overrefusal(path: Path | None = None) -> list[Prompt]:
    """The benign prompts, each with its kind (``homonyms``, ...) as its category."""
    path = path or fixtures_dir() / "overrefusal.jsonl"
    prompts = []
    for number, line in numbered_lines(path, BenchmarkError):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompts.append(Prompt(row["id"], row["type"], row["prompt"]))
        except (ValueError, KeyError, TypeError):
            raise BenchmarkError("expected {id, type, prompt}", path, number) from None
    return prompts


def refusal_rate(verdicts: Iterable[Verdict]) -> float | None:
    """Share of judged answers that refuse (the refusal judge's ``safe``); None if none judged."""
    labels = [v.label for v in verdicts if v.label is not Label.ERROR]
    return labels.count(Label.SAFE) / len(labels) if labels else None
