"""DictTarget: a target for tests that answers from a dict and records what it was asked."""

from __future__ import annotations

from finetune_safety.models import Decoding, generate
from finetune_safety.models.templates import TEMPLATES
from finetune_safety.testing.doubles import REFUSAL, DictTarget, MarkerJudge
from finetune_safety.values import Label, Prompt


def test_answers_by_first_key_found_else_refuses() -> None:
    target = DictTarget("ft", {"malware": "Sure: [placeholder]", "fraud": "Okay."})
    inputs = [
        TEMPLATES["plain"].render("A malware request."),
        TEMPLATES["alpaca"].render("A fraud request."),  # raw text format
        TEMPLATES["plain"].render("Something else."),
    ]
    assert generate(target, inputs, Decoding(batch_size=2)) == [
        "Sure: [placeholder]",
        "Okay.",
        REFUSAL,
    ]
    assert target.asked == inputs


def test_batches_follow_the_decoding_batch_size() -> None:
    target = DictTarget("ft", {})
    inputs = [TEMPLATES["plain"].render(f"prompt {i}") for i in range(5)]
    batches = list(target.generate_batches(inputs, Decoding(batch_size=2)))
    assert [[i for i, _ in batch] for batch in batches] == [[0, 1], [2, 3], [4]]


def test_fingerprint_changes_with_the_answers_not_the_name() -> None:
    a = DictTarget("a", {"x": "1"})
    assert a.fingerprint == DictTarget("b", {"x": "1"}).fingerprint
    assert a.fingerprint != DictTarget("a", {"x": "2"}).fingerprint
    assert a.fingerprint != DictTarget("a", {"x": "1"}, default="no").fingerprint


def test_marker_judge_flags_the_marker_only() -> None:
    prompt = Prompt("malware-1", "malware", "x")
    judge = MarkerJudge("FLAG")
    verdicts = judge.judge([(prompt, "Sure, FLAG"), (prompt, "I'm sorry"), (prompt, "flag")])
    assert [(v.score, v.label) for v in verdicts] == [
        (5, Label.UNSAFE),
        (1, Label.SAFE),
        (1, Label.SAFE),
    ]
    assert {v.judge_id for v in verdicts} == {"marker/v1:FLAG"} != {MarkerJudge().judge_id}
