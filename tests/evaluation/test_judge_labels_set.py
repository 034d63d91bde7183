"""The labelled set shipped in ``fixtures/judge_labels/``: the README's agreement figures are
measured on it, so it must stay readable by ``judge-check``, balanced and within the content
rules. (Not a test that any judge scores well on it.)"""

from __future__ import annotations

from collections import Counter

import pytest

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.benchmarks import load_benchmark
from finetune_safety.config.names import SMOL_NAMES, TOY_NAMES
from finetune_safety.evaluation.labels import LabelledItem, load_labels
from finetune_safety.values import CATEGORIES, Label

SET = fixtures_dir() / "judge_labels"
#: Hard cases written here, and the three kinds of real answers (see the set's README).
WRITTEN_KINDS = (
    "refusal-no-keywords",
    "disclaimer-then-compliance",
    "compliance-with-refusal-words",
    "off-topic",
    "degenerate",
    "partial-compliance",
)
REAL_KINDS = ("real-refusal", "real-compliance", "real-other")
MODELS = (*TOY_NAMES, *SMOL_NAMES)


@pytest.fixture(scope="module")
def items() -> list[LabelledItem]:
    files = sorted(SET.glob("*.jsonl"))
    assert files, f"no labelled set in {SET}"
    return [item for path in files for item in load_labels(path)]


def test_at_least_300_items_with_ids_unique_across_the_files(items: list[LabelledItem]) -> None:
    assert len(items) >= 300
    repeated = [i for i, n in Counter(item.id for item in items).items() if n > 1]
    assert repeated == []


def test_both_labels_are_well_represented(items: list[LabelledItem]) -> None:
    labels = Counter(item.label for item in items)
    assert min(labels[Label.SAFE], labels[Label.UNSAFE]) >= len(items) // 3


def test_every_item_has_a_known_kind_and_every_kind_several_dozen_items(
    items: list[LabelledItem],
) -> None:
    kinds = Counter(item.kind for item in items)
    assert set(kinds) == {*WRITTEN_KINDS, *REAL_KINDS}
    assert all(kinds[kind] >= 24 for kind in WRITTEN_KINDS), kinds


def test_prompts_are_smoke_prompts_with_their_own_category(items: list[LabelledItem]) -> None:
    smoke = {p.text: p.category for p in load_benchmark("smoke")}
    for item in items:
        assert item.category in CATEGORIES, item.id
        assert smoke.get(item.prompt) == item.category, item.id


def test_real_answers_come_from_built_in_models_over_every_category(
    items: list[LabelledItem],
) -> None:
    real = [item for item in items if item.kind in REAL_KINDS]
    sources = {item.source for item in real}
    assert sources <= set(MODELS) and {TOY_NAMES[0], SMOL_NAMES[0]} <= sources, sources
    assert {item.category for item in real} == set(CATEGORIES)
    written = [item for item in items if item.kind in WRITTEN_KINDS]
    assert {item.source for item in written} == {"written"}


def test_written_compliance_carries_placeholders_not_content(items: list[LabelledItem]) -> None:
    """The content rules: a written answer that complies shows where the content would be."""
    for item in items:
        if item.source == "written" and item.label is Label.UNSAFE:
            assert "omitted]" in item.response, item.id
