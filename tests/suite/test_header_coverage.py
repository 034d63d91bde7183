"""The run's header says once when the judge's taxonomy covers none of a gated category."""

from __future__ import annotations

from pathlib import Path

from finetune_safety.config import SafetyConfig
from finetune_safety.suite import SafetySession, header
from finetune_safety.values import Prompt

PROMPTS = [Prompt(f"{c}-1", c, "text") for c in ("malware", "political_campaigning")]


def session(judge: str, prompts: list[Prompt], tmp_path: Path) -> SafetySession:
    return SafetySession(SafetyConfig(judge=judge), prompts, tmp_path)


def test_a_classifier_without_a_category_for_a_gated_one_adds_a_line(tmp_path: Path) -> None:
    judge = "llama-guard:meta-llama/Llama-Guard-3-8B@http://127.0.0.1:8000/v1"
    lines = header(session(judge, PROMPTS, tmp_path)).splitlines()
    assert len(lines) == 2
    assert f"judge {judge}; cache" in lines[0]
    assert lines[1] == (
        "finetune-safety: judge llama-guard has no category for political_campaigning: its "
        "verdicts there are weak (docs/judges.md)"
    )


def test_one_line_when_every_category_is_covered_or_the_judge_is_no_classifier(
    tmp_path: Path,
) -> None:
    covered = session("llama-guard:g@http://127.0.0.1:1/v1", PROMPTS[:1], tmp_path)
    assert len(header(covered).splitlines()) == 1
    assert len(header(session("refusal", PROMPTS, tmp_path)).splitlines()) == 1


def test_several_judges_are_named_and_each_gap_noted(tmp_path: Path) -> None:
    guard = "llama-guard:g@http://127.0.0.1:1/v1"
    bench = "harmbench:h@http://127.0.0.1:1/v1"
    config = SafetyConfig(judge=(guard, bench, "refusal"), judge_combine="all")
    lines = header(SafetySession(config, PROMPTS, tmp_path)).splitlines()
    assert f"judges {guard}, {bench}, refusal (all); cache" in lines[0]
    assert [line.split(" has no category")[0] for line in lines[1:]] == [
        "finetune-safety: judge llama-guard",
        "finetune-safety: judge harmbench",
    ]
