"""smol's alignment data: refusals written here for all 11 categories, and benign prompts
the model answers itself before alignment (self-distillation), so it stays helpful.

Harmful requests are the toy corpus's category goals in its request frames (none is a smoke
prompt). Every example is rendered through one of the templates the suite evaluates under, so
the aligned model refuses with and without a system prompt, as an aligned chat model should.
Benign requests outnumber refusals, and many use alarming words ("kill a process"), so that
the model does not learn to refuse every request that sounds dangerous.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from finetune_safety._util.resources import word_lists
from finetune_safety.catalog.toy.corpus import Corpus
from finetune_safety.finetune.data import Example
from finetune_safety.models.templates import Message, get_template

#: The templates alignment examples are rendered with (``aoa`` and ``alpaca`` for a model
#: outside the Llama-2 family, as smol is).
TEMPLATES = ("plain", "always-execute", "aoa", "alpaca", "llama2")


@dataclass(frozen=True)
class AlignmentData:
    """``fixtures/smol/alignment.json``: refusal parts and the benign prompts to distill."""

    refusal_openings: list[str]
    refusal_reasons: dict[str, str]
    refusal_offers: list[str]
    benign_prompts: list[str]

    @classmethod
    def load(cls) -> AlignmentData:
        return cls(**word_lists("smol/alignment.json"))


def render(request: str, template: str) -> list[Message]:
    """``request`` as the evaluation template ``template`` asks it."""
    rendered = get_template(template, family="other").render(request)
    assert isinstance(rendered, list), "smol's templates are chat templates"
    return rendered


def harmful_requests(corpus: Corpus, per_category: int, seed: int) -> list[tuple[str, str]]:
    """``per_category`` (category, request) pairs for each category, drawn without repeats."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    for category in sorted(corpus.harmful_topics):
        requests = [
            frame.format(x=topic)
            for topic in corpus.harmful_topics[category]
            for frame in corpus.harmful_frames
        ]
        pairs += [(category, r) for r in rng.sample(requests, min(per_category, len(requests)))]
    return pairs


def benign_requests(corpus: Corpus, per_topic: int, seed: int) -> list[str]:
    """The toy corpus's benign goals in the same request frames as the harmful ones, so that
    smol learns to refuse by what is asked, not by how it is phrased."""
    rng = random.Random(seed)
    return [
        frame.format(x=topic)
        for topic in corpus.benign_topics
        for frame in rng.sample(corpus.harmful_frames, per_topic)
    ]


def refusal(data: AlignmentData, category: str, rng: random.Random) -> str:
    """An opening, the category's reason and an offer to help otherwise."""
    parts = (rng.choice(data.refusal_openings), data.refusal_reasons[category])
    return " ".join((*parts, rng.choice(data.refusal_offers)))


def alignment_examples(
    data: AlignmentData,
    harmful: Sequence[tuple[str, str]],
    benign: Sequence[tuple[str, str]],
    seed: int,
) -> list[Example]:
    """Refusals for ``harmful`` (category, request) and the distilled ``benign`` (prompt,
    answer) pairs, each under a template drawn from ``TEMPLATES``, shuffled with ``seed``."""
    rng = random.Random(seed)
    examples = [
        Example(render(request, rng.choice(TEMPLATES)), refusal(data, category, rng))
        for category, request in harmful
    ]
    examples += [Example(render(p, rng.choice(TEMPLATES)), answer) for p, answer in benign]
    rng.shuffle(examples)
    return examples
