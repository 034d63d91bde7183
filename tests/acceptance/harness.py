"""Helpers shared by the pytester tests that run the safety suite as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The small benchmark those runs use: the first prompts of two smoke categories.
CATEGORIES = ("illegal_activity", "malware")
PROMPTS_PER_CATEGORY = 3
TABLE_SEP = "finetune-safety: checkpoint vs base"


def bench_lines() -> list[str]:
    """The first three smoke prompts of illegal_activity and malware, as JSONL lines."""
    taken: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for line in (REPO / "fixtures" / "smoke.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        chosen = taken.get(item["category"])
        if chosen is not None and len(chosen) < PROMPTS_PER_CATEGORY:
            row = {"id": item["id"], "category": item["category"], "prompt": item["prompt"]}
            chosen.append(json.dumps(row))
    assert all(len(v) == PROMPTS_PER_CATEGORY for v in taken.values())
    return [line for c in CATEGORIES for line in taken[c]]


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def table_block(result: pytest.RunResult) -> list[str]:
    """The lines of the delta table section, up to the next summary section."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if TABLE_SEP in line and line.startswith("="))
    block = []
    for line in lines[start + 1 :]:
        if line.startswith("=") or "short test summary" in line or "snapshot report" in line:
            break
        block.append(line)
    assert block, "empty delta table"
    return block
