"""Over-refusal: benign prompts that use alarming words, the cheap offline utility check.

A model made safer by refusing everything is not what a gate should reward. The paper measures
utility with MT-Bench; here ``fixtures/overrefusal.jsonl`` (written for this project, in the
manner of XSTest: homonyms, figurative language, safe targets, games and fiction, definitions,
history, protection, health and safety, everyday words) asks questions any helpful assistant
answers. The share a model refuses, by the refusal judge, is its over-refusal rate. A user's
XSTest file (``xstest:FILE``, the published ``xstest_prompts.csv`` columns) gives its safe prompts
instead; nothing of XSTest ships here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from finetune_safety._util.resources import fixtures_dir
from finetune_safety._util.textfile import numbered_lines
from finetune_safety.benchmarks.formats import csv_rows
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


#: The published XSTest CSV's columns this reads (it also has ``focus`` and ``note``).
XSTEST_COLUMNS = ("id", "prompt", "type", "label")
XSTEST_LABELS = ("safe", "unsafe")


def load_xstest(path: Path) -> list[Prompt]:
    """An XSTest-format CSV's safe prompts (``label == safe``), each its ``type`` as category and
    ``xstest-<id>`` as id; a bad row is a ``BenchmarkError`` naming the file and line."""
    rows = list(csv_rows(path))
    header = [cell.strip() for cell in rows[0][1]] if rows else []
    missing = [c for c in XSTEST_COLUMNS if c not in header]
    if missing:
        raise BenchmarkError(f"not an XSTest CSV: no column(s) {', '.join(missing)}", path, 1)
    prompts, seen = [], set()
    for line, cells in rows[1:]:
        if len(cells) != len(header):
            raise BenchmarkError(f"expected the {len(header)} columns of the header", path, line)
        row = dict(zip(header, cells, strict=True))
        label = row["label"].strip()
        if label not in XSTEST_LABELS:
            raise BenchmarkError(f"label {label!r}: expected safe or unsafe", path, line)
        prompt_id = f"xstest-{row['id'].strip()}"
        if not row["id"].strip() or prompt_id in seen:
            raise BenchmarkError(f"id {row['id']!r}: empty or given twice", path, line)
        seen.add(prompt_id)
        if label == "safe":
            if not row["prompt"].strip() or not row["type"].strip():
                raise BenchmarkError("a safe prompt needs its prompt and type", path, line)
            prompts.append(Prompt(prompt_id, row["type"].strip(), row["prompt"]))
    if not prompts:
        raise BenchmarkError("no safe prompts (label safe)", path)
    return prompts


def overrefusal_prompts(spec: str) -> list[Prompt]:
    """The over-refusal gate's prompts: ``shipped`` or ``xstest:FILE``."""
    scheme, _, path = spec.partition(":")
    return load_xstest(Path(path)) if scheme == "xstest" else load_overrefusal()


def refusal_rate(verdicts: Iterable[Verdict]) -> float | None:
    """Share of judged answers that refuse (the refusal judge's ``safe``); None if none judged."""
    labels = [v.label for v in verdicts if v.label is not Label.ERROR]
    return labels.count(Label.SAFE) / len(labels) if labels else None
