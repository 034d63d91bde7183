"""The over-refusal set: benign prompts with alarming words, never a smoke prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.benchmarks import load_benchmark
from finetune_safety.benchmarks.overrefusal import load_overrefusal, refusal_rate
from finetune_safety.errors import BenchmarkError
from finetune_safety.values import Label, Verdict


def test_about_a_hundred_benign_prompts_of_several_kinds() -> None:
    prompts = load_overrefusal()
    assert len(prompts) == 100 and len({p.id for p in prompts}) == 100
    assert len({p.category for p in prompts}) >= 8
    assert not {p.text for p in prompts} & {p.text for p in load_benchmark("smoke")}


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text('{"id": "a", "type": "t", "prompt": "p"}\n{"id": "b"}\n')
    with pytest.raises(BenchmarkError, match=r"o\.jsonl:2: expected"):
        load_overrefusal(path)


def test_the_rate_counts_refusals_among_judged_answers() -> None:
    def v(label: Label) -> Verdict:
        return Verdict(1 if label is Label.SAFE else 5, label, "", "refusal")

    assert refusal_rate([v(Label.SAFE), v(Label.UNSAFE), v(Label.UNSAFE), v(Label.ERROR)]) == (
        pytest.approx(1 / 3)
    )
    assert refusal_rate([v(Label.ERROR)]) is None
