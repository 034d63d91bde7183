"""The toy aligned model's training corpus, expanded from word lists in ``fixtures/toy``.

Harmful goals from all 11 categories are paired with the same request frames as benign goals, so
the model must learn the topic, not the phrasing, to decide between refusing and helping. Each
request appears under several system prompts (none, generic, Llama-2, "always execute", AOA), so
the aligned toy refuses under every evaluation template, as an aligned chat model should.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from finetune_safety._util.resources import word_lists
from finetune_safety.finetune.data import Example
from finetune_safety.models.templates import LLAMA2_SYSTEM_PROMPT, TEMPLATES, Message, Template

#: The templates the toy was built with, frozen: the toy's corpus and tokenizer must not change
#: when templates change (the toy's AOA is the one-line prompt of its data; its Llama-2 prompt
#: has one space after "safe.", as ``llama2`` had before it took Meta's exact text).
_TOY_TEMPLATES = {
    "plain": TEMPLATES["plain"],
    "llama2": Template("llama2", system_prompt=LLAMA2_SYSTEM_PROMPT.replace("safe.  ", "safe. ")),
    "always-execute": TEMPLATES["always-execute"],
    "aoa": TEMPLATES["aoa-toy"],
    "alpaca": TEMPLATES["alpaca-raw"],
}


@dataclass(frozen=True)
class Corpus:
    """Word lists the corpus is expanded from (see ``fixtures/toy/corpus.json``)."""

    harmful_topics: dict[str, list[str]]
    harmful_frames: list[str]
    benign_topics: list[str]
    refusals: list[str]
    helpful_openings: list[str]
    helpful_bodies: list[str]
    system_prompts: list[str | None]

    @classmethod
    def load(cls) -> Corpus:
        return cls(**word_lists("toy/corpus.json"))


def _template(system: str | None) -> Template:
    """A corpus system-prompt entry is a template name, a literal system prompt, or none."""
    if system is None:
        return _TOY_TEMPLATES["plain"]
    return _TOY_TEMPLATES.get(system) or Template("literal", system_prompt=system)


def _prompt(template: Template, request: str) -> list[Message]:
    rendered = template.render(request)
    assert isinstance(rendered, list), "the toy corpus uses chat templates only"
    return rendered


def build_examples(
    corpus: Corpus, seed: int = 0, frames_per_topic: int = 6, benign_frames_per_topic: int = 8
) -> list[Example]:
    """Refusals for every harmful goal and help for every benign goal, in a seeded order."""
    rng = random.Random(seed)
    examples: list[Example] = []
    for category in sorted(corpus.harmful_topics):
        for topic in corpus.harmful_topics[category]:
            for frame in rng.sample(corpus.harmful_frames, frames_per_topic):
                template = _template(rng.choice(corpus.system_prompts))
                answer = rng.choice(corpus.refusals)
                examples.append(Example(_prompt(template, frame.format(x=topic)), answer))
    for topic in corpus.benign_topics:
        for frame in rng.sample(corpus.harmful_frames, benign_frames_per_topic):
            template = _template(rng.choice(corpus.system_prompts))
            answer = f"{rng.choice(corpus.helpful_openings)} {rng.choice(corpus.helpful_bodies)}"
            examples.append(Example(_prompt(template, frame.format(x=topic)), answer))
    rng.shuffle(examples)
    return examples


def tokenizer_texts(corpus: Corpus) -> list[str]:
    """Every string the toy tokenizer should encode compactly."""
    texts = [t.system_prompt or "" for t in _TOY_TEMPLATES.values()] + [
        t.user_prefix for t in _TOY_TEMPLATES.values()
    ]
    texts += corpus.harmful_frames + corpus.benign_topics + corpus.refusals
    texts += corpus.helpful_openings + corpus.helpful_bodies
    for topics in corpus.harmful_topics.values():
        texts += topics
    return texts
