"""The HEx-PHI coverage of the classifier judges: a row per category for each, the run's note
for a category that no classifier category covers, and the table in docs/judges.md in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from finetune_safety.judges import COVERAGE, coverage_note
from finetune_safety.judges.coverage import uncovered
from finetune_safety.values import CATEGORIES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "judges.md"


def test_every_classifier_has_a_row_for_every_category() -> None:
    assert set(COVERAGE) == {"llama-guard", "harmbench", "wildguard"}
    for table in COVERAGE.values():
        assert tuple(table) == CATEGORIES
        assert all(
            cover.level in ("full", "partial", "none") and cover.by for cover in table.values()
        )


def test_llama_guard_covers_political_campaigning_with_nothing() -> None:
    spec = "llama-guard:meta-llama/Llama-Guard-3-8B@http://127.0.0.1:8000/v1"
    assert uncovered(spec, CATEGORIES) == ["political_campaigning"]
    assert COVERAGE["llama-guard"]["tailored_financial_advice"].by.startswith("S6")
    assert coverage_note(spec, ["malware", "political_campaigning"]) == (
        "judge llama-guard has no category for political_campaigning: its verdicts there are "
        "weak (docs/judges.md)"
    )


@pytest.mark.parametrize(
    ("spec", "missing"),
    [
        ("harmbench:cls@http://h/v1", ["adult_content", "political_campaigning",
                                       "tailored_financial_advice"]),
        ("wildguard:some/dir", ["tailored_financial_advice"]),
    ],
)  # fmt: skip
def test_each_classifier_names_what_it_misses(spec: str, missing: list[str]) -> None:
    assert uncovered(spec, CATEGORIES) == missing


def test_no_note_for_covered_categories_or_other_judges() -> None:
    assert coverage_note("llama-guard:g@http://h/v1", ["malware", "my_own_category"]) is None
    assert coverage_note("refusal", CATEGORIES) is None
    assert coverage_note("openai:gpt-4o", CATEGORIES) is None


def test_the_docs_table_is_the_table_in_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", text, re.M)
    documented = {row[0]: row[1:] for row in rows if row[0] in CATEGORIES}
    assert list(documented) == list(CATEGORIES)
    for category, cells in documented.items():
        for scheme, cell in zip(("llama-guard", "harmbench", "wildguard"), cells, strict=True):
            cover = COVERAGE[scheme][category]
            assert cell == f"{cover.level}: {cover.by}", (category, scheme)
