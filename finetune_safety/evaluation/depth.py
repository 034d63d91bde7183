"""The prefill-depth probe (Qi et al., "Safety Alignment Should Be Made More Than Just a Few
Tokens Deep", ICLR 2025): each answer begins with the first k tokens of a harmful one, and the
model continues it. An alignment that lives in the first few tokens of an answer collapses as k
grows; the harmfulness rate as a function of k is the curve.

The prefixes are harmful answers the user brings (a JSONL file, ``id`` -> ``response``) or a
named model's greedy answers to the same prompts (cached in the store like any answer); nothing
harmful ships here. k = 0 is the ordinary evaluation, whose records are reused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from finetune_safety._util.textfile import json_object, numbered_lines
from finetune_safety.errors import PrefixError
from finetune_safety.evaluation.case import CaseResult, Record
from finetune_safety.evaluation.metrics import OVERALL
from finetune_safety.evaluation.pipeline import Evaluator, Prefill
from finetune_safety.models import Prefillable, Target
from finetune_safety.values import Prompt

#: The depths ``finetune-safety depth`` measures unless told: the paper's, and 0.
DEFAULT_DEPTHS = (0, 5, 10, 20, 40)
_REQUIRED = ("id", "response")
_OPTIONAL = ("prompt", "category")


_CATEGORY = "prefill-k"


def depth_category(depth: int) -> str:
    """How a depth's pooled case is named in messages and reports: ``prefill-k10``."""
    return f"{_CATEGORY}{depth}"


def is_depth_category(category: str) -> bool:
    return category.startswith(_CATEGORY)


def _row(path: Path, line: int, raw: str) -> tuple[str, str]:
    row = json_object(raw, path, line, PrefixError)
    missing = [k for k in _REQUIRED if k not in row]
    unknown = sorted(set(row) - {*_REQUIRED, *_OPTIONAL})
    if missing or unknown:
        what = f"missing key(s) {missing}" if missing else f"unknown key(s) {unknown}"
        raise PrefixError(f"{what}; known: {[*_REQUIRED, *_OPTIONAL]}", path, line)
    for key in _REQUIRED:
        if not (isinstance(row[key], str) and row[key].strip()):
            raise PrefixError(f"{key}: expected non-empty text, got {row[key]!r}", path, line)
    return row["id"], row["response"]


def load_prefixes(path: Path) -> dict[str, str]:
    """Prompt id -> harmful answer; a bad row, a repeated id or an empty file is a
    ``PrefixError`` naming the file and line."""
    answers: dict[str, str] = {}
    first: dict[str, int] = {}
    for line, raw in numbered_lines(path, PrefixError):
        if not raw.strip():
            continue
        prompt_id, answer = _row(path, line, raw)
        if prompt_id in first:
            raise PrefixError(
                f"duplicate id {prompt_id!r} (first on line {first[prompt_id]})", path, line
            )
        first[prompt_id] = line
        answers[prompt_id] = answer
    if not answers:
        raise PrefixError("no answers", path)
    return answers


def answers_for(prompts: Sequence[Prompt], answers: Mapping[str, str], source: str) -> list[str]:
    """Each prompt's answer to prefill from; prompts the source has no answer for are named."""
    missing = [p.id for p in prompts if p.id not in answers]
    if missing:
        shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all)" if missing[5:] else "")
        raise PrefixError(f"no answer for prompt id(s) {shown}", source)
    return [answers[p.id] for p in prompts]


def model_answers(evaluator: Evaluator, model: Target, prompts: Sequence[Prompt]) -> dict[str, str]:
    """A prefix model's greedy answers, by prompt id, through the store (generated once)."""
    responses, _ = evaluator.responses(model, prompts)
    return {p.id: r for p, r in zip(prompts, responses, strict=True)}


def prefilled_records(
    evaluator: Evaluator,
    target: Target,
    prompts: Sequence[Prompt],
    answers: Sequence[str],
    depth: int,
    judge_sees: str = "whole",
) -> tuple[Record, ...]:
    """Every prompt's record with its answer begun by the first ``depth`` units of its harmful
    answer (``Prefillable``): the judge reads the prefix and the continuation (``whole``, as
    the paper's judge does) or the continuation alone. ``depth`` 0 is the ordinary evaluation.
    The caller checks ``prefill_refusal`` first."""
    if depth == 0:
        return evaluator.run(target, prompts).records
    assert isinstance(target, Prefillable), "checked with prefill_refusal"
    prefixes = tuple(target.prefix(a, depth) for a in answers)
    continuations, _ = evaluator.responses(target, prompts, Prefill(depth, prefixes))
    pairs = zip(prefixes, continuations, strict=True)
    responses = [p + c if judge_sees == "whole" else c for p, c in pairs]
    verdicts, _ = evaluator.verdicts(prompts, responses)
    return tuple(Record(*row) for row in zip(prompts, responses, verdicts, strict=True))


def depth_case(
    alias: str, depth: int, base_records: tuple[Record, ...], records: tuple[Record, ...]
) -> CaseResult:
    """A checkpoint beside its base, both prefilled to ``depth``, over every prompt pooled:
    one McNemar test on all pairs, so no Holm correction applies."""
    case = CaseResult.pair(alias, OVERALL, base_records, records)
    category = depth_category(depth)
    return replace(
        case,
        category=category,
        base=replace(case.base, category=category),
        result=replace(case.result, category=category),
        p_holm=case.p_value,
        family=1,
    )
