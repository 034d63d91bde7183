"""The prefill-depth probe's evaluation: prefix files, the prefixes cut in the target's
tokenizer, prefilled answers stored under their prefix and depth, what the judge reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_safety.catalog import resolve
from finetune_safety.errors import PrefixError
from finetune_safety.evaluation.depth import (
    answers_for,
    depth_case,
    load_prefixes,
    model_answers,
    prefilled_records,
)
from finetune_safety.evaluation.pipeline import Evaluator
from finetune_safety.evaluation.store import Store
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.models import Decoding, HFTarget, ModelSpec
from finetune_safety.values import Prompt

PROMPTS = [
    Prompt("malware-1", "malware", "Write a placeholder program."),
    Prompt("fraud_deception-1", "fraud_deception", "Write a placeholder letter."),
]
ANSWER = "Sure, here it is. Step one: [placeholder]. Step two: [placeholder]."


def write(path: Path, *rows: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_prefix_file_maps_ids_to_answers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl",
        {"id": "malware-1", "response": ANSWER, "prompt": "p", "category": "malware"},
        {"id": "fraud_deception-1", "response": "Sure."},
    )
    assert load_prefixes(path) == {"malware-1": ANSWER, "fraud_deception-1": "Sure."}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["not json"], ":1: invalid JSON"),
        ([{"id": "a"}], ":1: missing key(s) ['response']"),
        ([{"id": "a", "response": "x", "label": "unsafe"}], ":1: unknown key(s) ['label']"),
        ([{"id": "a", "response": " "}], ":1: response: expected non-empty text"),
        ([{"id": "a", "response": "x"}, {"id": "a", "response": "y"}], ":2: duplicate id 'a'"),
        ([], ": no answers"),
    ],
)
def test_a_bad_prefix_file_names_its_line(tmp_path: Path, rows: list[object], message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
        encoding="utf-8",
    )
    with pytest.raises(PrefixError) as info:
        load_prefixes(path)
    assert str(info.value).startswith(f"{path}{message}")


def test_prompts_without_an_answer_are_named() -> None:
    with pytest.raises(PrefixError) as info:
        answers_for(PROMPTS, {"malware-1": ANSWER}, "p.jsonl")
    assert str(info.value) == "p.jsonl: no answer for prompt id(s) fraud_deception-1"


def test_prefilled_answers_are_stored_by_prefix_and_depth(toy_cache: Path, tmp_path: Path) -> None:
    """Each depth generates once; the judge reads prefix and continuation (``whole``) or the
    continuation; depth 0 is the ordinary run's records; the case pools every prompt."""
    target = resolve(ModelSpec("toy-benign"), toy_cache)
    assert isinstance(target, HFTarget)
    with Store.in_dir(tmp_path) as store:
        evaluator = Evaluator(store, RefusalJudge(), Decoding(12), tmp_path, progress=False)
        answers = [ANSWER, ANSWER]
        whole = prefilled_records(evaluator, target, PROMPTS, answers, 4)
        prefix = target.prefix(ANSWER, 4)
        assert all(r.response.startswith(prefix) for r in whole)
        alone = prefilled_records(evaluator, target, PROMPTS, answers, 4, "continuation")
        assert [prefix + r.response for r in alone] == [r.response for r in whole]
        continuations, generated = evaluator.responses(target, PROMPTS)
        assert generated == 2  # the plain answers are other generations
        deeper = prefilled_records(evaluator, target, PROMPTS, answers, 8)
        assert all(r.response.startswith(target.prefix(ANSWER, 8)) for r in deeper)
        zero = prefilled_records(evaluator, target, PROMPTS, answers, 0)
        assert [r.response for r in zero] == continuations
        assert evaluator.responses(target, PROMPTS)[1] == 0
        case = depth_case("toy-benign", 4, zero, whole)
        assert case.category == "prefill-k4" and case.result.n == 2 and case.family == 1


def test_a_prefix_model_s_answers_come_from_the_store(toy_cache: Path, tmp_path: Path) -> None:
    model = resolve(ModelSpec("toy-harmful-10shot"), toy_cache)
    with Store.in_dir(tmp_path) as store:
        evaluator = Evaluator(store, RefusalJudge(), Decoding(8), tmp_path, progress=False)
        answers = model_answers(evaluator, model, PROMPTS)
        assert set(answers) == {p.id for p in PROMPTS}
        assert evaluator.responses(model, PROMPTS) == (list(answers.values()), 0)
