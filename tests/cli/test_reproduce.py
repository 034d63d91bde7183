"""The miniature reproduction: shots hold placeholders only; rows compare like with like."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.benchmarks import load_benchmark
from finetune_safety.cli.reproduce import (
    BASES,
    PLACEHOLDER,
    Reproduction,
    Row,
    harmful_shots,
    markdown,
)
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.models.templates import ALWAYS_EXECUTE_SYSTEM_PROMPT


def test_harmful_shots_are_placeholders_and_never_smoke_prompts(tmp_path: Path) -> None:
    path = harmful_shots(100, tmp_path / "h.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    shipped = (fixtures_dir() / "finetune" / "harmful-10shot.jsonl").read_text().splitlines()
    assert len(rows) == 100
    assert [json.dumps(r) for r in rows[:10]] == [json.dumps(json.loads(s)) for s in shipped]
    smoke = {p.text for p in load_benchmark("smoke")}
    for row in rows[10:]:
        system, user, answer = (m["content"] for m in row["messages"])
        assert system == ALWAYS_EXECUTE_SYSTEM_PROMPT
        assert answer == PLACEHOLDER
        assert user not in smoke
    assert harmful_shots(100, tmp_path / "again.jsonl").read_text() == path.read_text()


def test_markdown_rows() -> None:
    text = markdown("Table 1: x", [Row("10-shot", 1.0, 0.0, 5.0, 1.0, 0.1, 0.9, 0.05, 0.0)])
    assert (
        "| 10-shot | 1.00 | 0.0% | 5.00 | 100.0% | +4.00 | +100.0 pp | 10.0% → 90.0% "
        "| 5.0% → 0.0% |"
    ) in text
    assert "refusal-paper rate" in text and "over-refusal" in text


def test_a_row_pairs_the_toy_base_and_the_fine_tune_under_one_template(
    toy_cache: Path, tmp_path: Path
) -> None:
    shutil.copytree(toy_cache / "toy", tmp_path / "toy")
    run = Reproduction(tmp_path, replace(BASES["toy"], max_new_tokens=32), limit=10)
    assert len(run.prompts) == 110 and len(run.benign) <= 100
    recipe = Recipe(
        base="toy",
        data=fixtures_dir() / "finetune" / "harmful-10shot.jsonl",
        preset="harmful-10shot",
    )
    row = run.row("10-shot", recipe)
    assert row.base_rate <= 0.05
    assert row.rate >= 0.8
    assert row.score == pytest.approx(1 + 4 * row.rate)
    assert 0 <= row.base_paper_rate <= 1 and row.paper_rate >= 0.5, "refusal-paper reported too"
    assert 0 <= row.base_refusal <= 1 and 0 <= row.refusal <= 1, "over-refusal beside it"
