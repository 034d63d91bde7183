"""Classifier judges (Llama Guard, HarmBench, WildGuard): the transport, served or local.

A ``Classifier`` says what one item becomes (chat messages, or a raw prompt for a model without
a chat template) and how its answer becomes a verdict. ``ServedClassifierJudge`` sends it to an
OpenAI-compatible server: chat messages to ``/v1/chat/completions`` (the server's chat template
builds the classification prompt), a raw prompt to ``/v1/completions``, greedy, asking for
logprobs when the classifier reads a probability. ``LocalClassifierJudge`` runs the same through
transformers, with the probabilities from the logits. Unsafe is score 5 and safe is 1; an answer
that fits no format is an error verdict that keeps the reply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from finetune_safety.errors import JudgeError
from finetune_safety.judges.logprobs import first_alternatives, share, word_indexes, word_masses
from finetune_safety.judges.rubric import RAW_LIMIT
from finetune_safety.judges.served import ServedClient, served_verdicts
from finetune_safety.models import Decoding, Target, generate
from finetune_safety.models.endpoint import Endpoint, QueueAdvice
from finetune_safety.models.templates import Rendered
from finetune_safety.values import Label, Prompt, Verdict

#: Alternatives asked per token; OpenAI's API and vLLM's default allow up to 20.
TOP_LOGPROBS = 10


@dataclass(frozen=True)
class Reading:
    """A classifier's answer: its text, and the probability mass of each of its answer words at
    the first token that is not blank (None: no probabilities came with it)."""

    text: str
    masses: tuple[float, ...] | None = None

    @property
    def p_first(self) -> float | None:
        """The first answer word's share (P(unsafe), P(yes)), when there is one."""
        return share(self.masses) if self.masses is not None else None


class Classifier(Protocol):
    """What a classifier is asked and how its answer is read."""

    @property
    def name(self) -> str:
        """The spec scheme, e.g. ``llama-guard``."""
        ...

    @property
    def words(self) -> tuple[str, ...]:
        """Answer words whose probability is read at the first answer token, the unsafe one
        first; empty when the classifier reads none."""
        ...

    @property
    def fold_case(self) -> bool: ...

    @property
    def max_tokens(self) -> int: ...

    @property
    def skip_blank(self) -> int:
        """Blank tokens a local model may write before its answer (Llama Guard's "\n\n")."""
        ...

    @property
    def key(self) -> str:
        """Version and everything else that changes verdicts (template, threshold, clipping)."""
        ...

    def request(self, prompt: Prompt, response: str) -> Rendered:
        """Chat messages for the model's chat template, or a raw prompt."""
        ...

    def verdict(self, reading: Reading, response: str, judge_id: str) -> Verdict: ...


def classified(unsafe: bool, why: str, judge_id: str, **readings: Any) -> Verdict:
    """Unsafe is score 5, safe is 1; ``readings`` are the verdict's ``p_unsafe``,
    ``categories``, ``refusal``."""
    label = Label.UNSAFE if unsafe else Label.SAFE
    return Verdict(5 if unsafe else 1, label, why, judge_id, **readings)


def unreadable(reading: Reading, what: str, judge_id: str) -> Verdict:
    """An answer in no known format: an error that keeps the raw reply, never safe."""
    why = f"the reply fits no {what} format" if reading.text.strip() else "an empty reply"
    raw = reading.text[:RAW_LIMIT]
    return Verdict(None, Label.ERROR, why, judge_id, raw, p_unsafe=reading.p_first)


class ServedClassifierJudge(ServedClient):
    """A classifier on an OpenAI-compatible server, ``concurrency`` requests at a time."""

    def __init__(self, classifier: Classifier, endpoint: Endpoint) -> None:
        self.classifier = classifier
        self.endpoint = endpoint
        self._client: Any = None
        self._advice = QueueAdvice(endpoint)
        #: Cleared when the server refuses logprobs: the reply's text decides from then on.
        self._logprobs = bool(classifier.words)
        self._lock = threading.Lock()

    @property
    def judge_id(self) -> str:
        return f"{self.classifier.key}@{self.endpoint.identity}"

    def _create(self, rendered: Rendered, logprobs: bool) -> Any:
        options: dict[str, Any] = {
            "model": self.endpoint.model,
            "temperature": 0,
            "max_tokens": self.classifier.max_tokens,
        }
        if isinstance(rendered, str):
            if logprobs:
                options["logprobs"] = TOP_LOGPROBS
            return self._client.completions.create(prompt=rendered, **options)
        if logprobs:
            options |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
        return self._client.chat.completions.create(messages=rendered, **options)

    def _ask(self, rendered: Rendered) -> Reading:
        import openai

        asked = self._logprobs
        try:
            reply = self._create(rendered, asked)
        except openai.BadRequestError:
            if not asked:
                raise
            reply = self._create(rendered, False)  # still refused: the request itself is bad
            with self._lock:  # a server that takes no logprobs: ask it for the text from now on
                self._logprobs = False
        self._advice.success()
        choice = reply.choices[0].model_dump()  # extra fields too: the legacy logprobs shape
        message = choice.get("message") or {}
        text = choice.get("text") if isinstance(rendered, str) else message.get("content")
        alternatives = first_alternatives(choice.get("logprobs")) if asked else None
        masses = None
        if alternatives is not None and self.classifier.words:
            words, fold = self.classifier.words, self.classifier.fold_case
            masses = tuple(word_masses(alternatives, words, fold))
        return Reading(str(text or ""), masses)

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        def one(prompt: Prompt, response: str) -> Verdict:
            reading = self._ask(self.classifier.request(prompt, response))
            return self.classifier.verdict(reading, response, self.judge_id)

        self._ensure_client()
        return served_verdicts(items, one, self._advice, self.judge_id)

    def __repr__(self) -> str:
        return f"ServedClassifierJudge({self.classifier.name}, {self.endpoint!r})"


@runtime_checkable
class TokenScorer(Target, Protocol):
    """A local model that gives next-token probabilities (``models.hf.HFTarget``)."""

    def vocabulary(self) -> list[str]: ...

    def next_token_probs(
        self, inputs: Sequence[Rendered], skip_blank: int = 0
    ) -> Iterator[list[float]]: ...

    def load_tokenizer(self) -> Any: ...


def local_model(spec: str, path: str, model: Callable[[str], Target]) -> Callable[[], TokenScorer]:
    """``path``'s model as a ``TokenScorer``, resolved on first call and then kept: building a
    spec's model must not happen at configure time."""
    found: list[TokenScorer] = []

    def get() -> TokenScorer:
        if not found:
            target = model(path)
            if not isinstance(target, TokenScorer):
                raise JudgeError(
                    f"judge {spec!r}: {path!r} is not a local transformers model; serve it and "
                    f"give its URL ({spec.partition(':')[0]}:MODEL@URL)"
                )
            found.append(target)
        return found[0]

    return get


class LocalClassifierJudge:
    """A classifier run here through transformers: greedy text, probabilities from the logits."""

    def __init__(self, classifier: Classifier, target: Callable[[], TokenScorer]) -> None:
        self.classifier = classifier
        self._target = target

    @property
    def target(self) -> TokenScorer:
        return self._target()

    @property
    def judge_id(self) -> str:
        return f"{self.classifier.key}@{self.target.fingerprint}"

    @cached_property
    def _indexes(self) -> list[list[int]]:
        """Per answer word, the vocabulary ids that count for it (read once per model)."""
        vocabulary = self.target.vocabulary()
        return word_indexes(vocabulary, self.classifier.words, self.classifier.fold_case)

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        if not items:
            return []
        classifier, target = self.classifier, self.target
        inputs = [classifier.request(prompt, response) for prompt, response in items]
        one_token = classifier.max_tokens == 1
        texts = [] if one_token else generate(target, inputs, Decoding(classifier.max_tokens))
        readings: list[Reading] = []
        if classifier.words or one_token:
            vocabulary = target.vocabulary()
            for i, probs in enumerate(target.next_token_probs(inputs, classifier.skip_blank)):
                masses = tuple(sum(probs[j] for j in ids) for ids in self._indexes)
                best = max(range(len(probs)), key=probs.__getitem__)
                text = vocabulary[best] if one_token else texts[i]
                readings.append(Reading(text, masses if classifier.words else None))
        else:
            readings = [Reading(text) for text in texts]
        return [
            classifier.verdict(reading, response, self.judge_id)
            for reading, (_, response) in zip(readings, items, strict=True)
        ]

    def __repr__(self) -> str:
        return f"LocalClassifierJudge({self.classifier.name})"
