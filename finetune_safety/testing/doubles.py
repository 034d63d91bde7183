"""Test doubles that stand in for real targets and judges: no weights, no network, deterministic."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from finetune_safety.config import Thresholds
from finetune_safety.evaluation.case import CaseResult, Record
from finetune_safety.evaluation.stats import holm
from finetune_safety.models import Decoding
from finetune_safety.models.templates import TEMPLATES, Rendered, Template
from finetune_safety.report.record import CaseRecord
from finetune_safety.values import Label, Prompt, Verdict

#: What a ``DictTarget`` answers when no key matches: a refusal, as an aligned model would.
REFUSAL = "I'm sorry, but I cannot help with that."


class DictTarget:
    """Answers each input with the reply of the first ``answers`` key found in it, else
    ``default``; records every input it is asked (``asked``), so a test can check that a cached
    run asks nothing. Its fingerprint is a hash of its answers, as a real one hashes weights."""

    def __init__(
        self,
        name: str,
        answers: Mapping[str, str],
        default: str = REFUSAL,
        template: Template | None = None,
    ) -> None:
        self.name = name
        self.answers = dict(answers)
        self.default = default
        self.template = template or TEMPLATES["plain"]
        self.asked: list[Rendered] = []
        content = json.dumps([sorted(self.answers.items()), default], ensure_ascii=False)
        self.fingerprint = "dict:" + hashlib.sha256(content.encode()).hexdigest()[:16]

    def reply(self, rendered: Rendered) -> str:
        """The answer to one input: its user message (chat) or its text (raw format)."""
        text = rendered if isinstance(rendered, str) else rendered[-1]["content"]
        return next((v for k, v in self.answers.items() if k in text), self.default)

    def generate_batches(
        self, inputs: Sequence[Rendered], decoding: Decoding
    ) -> Iterator[list[tuple[int, str]]]:
        size = 16 if decoding.batch_size == "auto" else max(1, decoding.batch_size)
        for start in range(0, len(inputs), size):
            batch = inputs[start : start + size]
            self.asked.extend(batch)
            yield [(start + i, self.reply(rendered)) for i, rendered in enumerate(batch)]


class MarkerJudge:
    """Judges a response unsafe (5) when it contains ``marker``, else safe (1): a judge whose
    verdicts a test controls through what its targets answer."""

    def __init__(self, marker: str = "UNSAFE") -> None:
        self.marker = marker
        self.judge_id = f"marker/v1:{marker}"

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        return [
            Verdict(5, Label.UNSAFE, "marker", self.judge_id)
            if self.marker in response
            else Verdict(1, Label.SAFE, "no marker", self.judge_id)
            for _, response in items
        ]


#: Judge scores of prompts 1, 2, ... in order, or by prompt number; None is a judge error.
Scores = Sequence[int | None] | Mapping[int, int | None]


def scored_records(
    category: str, scores: Scores, reply: str = "reply {i}", rationale: str = "r"
) -> tuple[Record, ...]:
    """Records of prompts ``category-1``, ``category-2``, ... judged with ``scores`` (5 is
    unsafe, None an error, else safe, as the refusal judge labels); ``reply`` is formatted with
    the prompt's number ``i`` and its ``score``."""
    out = []
    numbered = scores.items() if isinstance(scores, Mapping) else enumerate(scores, 1)
    for i, score in numbered:
        label = Label.ERROR if score is None else Label.UNSAFE if score == 5 else Label.SAFE
        prompt = Prompt(f"{category}-{i}", category, "text")
        text = reply.format(i=i, score=score)
        out.append(Record(prompt, text, Verdict(score, label, rationale, "refusal/v1")))
    return tuple(out)


def paired_case(
    alias: str,
    category: str,
    base_scores: Scores,
    scores: Scores,
    reply: str = "reply {i}",
    rationale: str = "r",
) -> CaseResult:
    """The case of checkpoint ``alias`` on ``category``: the base judged with ``base_scores``,
    the checkpoint with ``scores`` (as ``scored_records``); no Holm adjustment yet."""
    base = scored_records(category, base_scores, reply, rationale)
    mine = scored_records(category, scores, reply, rationale)
    return CaseResult.pair(alias, category, base, mine)


def holm_family(cases: Sequence[CaseResult]) -> list[CaseResult]:
    """The cases of one checkpoint with Holm over all of them, as the suite computes it (a
    case alone keeps its raw p)."""
    adjusted = holm({c.category: c.p_value for c in cases})
    return [replace(c, p_holm=adjusted[c.category], family=len(cases)) for c in cases]


def case_payload(
    case: CaseResult,
    gate: bool,
    limits: Thresholds | None = None,
    fingerprints: Mapping[str, str] | None = None,
) -> str:
    """The JSON a suite test's report carries for ``case``, as the plugin attaches it."""
    return CaseRecord.from_case(case, gate, limits, fingerprints).to_json()
