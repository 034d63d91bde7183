"""Reading a classifier's first answer token and its probability from what a server returns.

Servers return a reply's log-probabilities in one of two shapes (see docs/judges.md):

* the OpenAI chat shape, ``logprobs.content = [{token, logprob, top_logprobs: [{token,
  logprob}]}]`` (vLLM, llama.cpp's ``llama-server``, recent llama-cpp-python);
* the legacy completions shape, ``logprobs = {tokens, token_logprobs, top_logprobs: [{token:
  logprob}]}`` (every ``/v1/completions`` server, and older llama-cpp-python chat replies).

A classifier answers with a word (``safe``/``unsafe``, ``Yes``/``No``), often after blank tokens
(Llama Guard over vLLM writes ``\\n\\n`` first). Its probability is read at the first token that
is not blank: a token counts for a word when its text, stripped, is a non-empty start of that
word and of no other (``un`` for ``unsafe`` where a tokenizer splits the word). A shape that
cannot be read gives None, and the reply's text decides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["Alternatives", "first_alternatives", "share", "word_indexes", "word_masses"]

#: Token text -> probability, at one position of a reply.
Alternatives = dict[str, float]


def _probability(logprob: object) -> float | None:
    if isinstance(logprob, int | float) and not isinstance(logprob, bool) and logprob <= 0:
        return math.exp(logprob)
    return None


def _chat_steps(content: Sequence[Any]) -> Iterable[tuple[str, Alternatives]]:
    for entry in content:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("token"), str):
            return
        found: Alternatives = {}
        for alternative in entry.get("top_logprobs") or ():
            if isinstance(alternative, Mapping) and isinstance(alternative.get("token"), str):
                p = _probability(alternative.get("logprob"))
                if p is not None:  # two token ids may share a text: their mass adds up
                    found[alternative["token"]] = found.get(alternative["token"], 0.0) + p
        chosen = _probability(entry.get("logprob"))
        if chosen is not None and entry["token"] not in found:
            found[entry["token"]] = chosen
        yield entry["token"], found


def _legacy_steps(logprobs: Mapping[str, Any]) -> Iterable[tuple[str, Alternatives]]:
    tokens, chosen = logprobs.get("tokens"), logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or []
    if not isinstance(tokens, list):
        return
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            return
        top = tops[i] if i < len(tops) and isinstance(tops[i], Mapping) else {}
        found = {t: p for t, lp in top.items() if (p := _probability(lp)) is not None}
        p = _probability(chosen[i]) if i < len(chosen) else None
        if p is not None and token not in found:
            found[token] = p
        yield token, found


def first_alternatives(logprobs: object) -> Alternatives | None:
    """The alternatives at the reply's first token that is not blank, from either shape; None
    when there are no logprobs, no such token, or nothing readable at it."""
    if not isinstance(logprobs, Mapping):
        return None
    content = logprobs.get("content")
    steps = _chat_steps(content) if isinstance(content, list) else _legacy_steps(logprobs)
    for token, alternatives in steps:
        if token.strip():
            return alternatives or None
    return None


def _word(token: str, words: Sequence[str], fold_case: bool) -> int | None:
    """The index of the one word ``token`` starts, or None."""
    text = token.strip()
    if fold_case:
        text = text.casefold()
    if not text:
        return None
    starts = [i for i, word in enumerate(words) if word.startswith(text)]
    return starts[0] if len(starts) == 1 else None


def word_indexes(
    tokens: Sequence[str], words: Sequence[str], fold_case: bool = False
) -> list[list[int]]:
    """For each word, the indexes of the tokens that count for it (a vocabulary, read once)."""
    found: list[list[int]] = [[] for _ in words]
    for index, token in enumerate(tokens):
        word = _word(token, words, fold_case)
        if word is not None:
            found[word].append(index)
    return found


def word_masses(
    alternatives: Mapping[str, float], words: Sequence[str], fold_case: bool = False
) -> list[float]:
    """Each word's probability mass among served alternatives."""
    mass = [0.0] * len(words)
    for token, p in alternatives.items():
        word = _word(token, words, fold_case)
        if word is not None:
            mass[word] += p
    return mass


def share(masses: Sequence[float]) -> float | None:
    """The first word's share of the words' mass (P(unsafe) among safe and unsafe), to six
    decimals (more digits are noise, and noisy in reports); None when no word had any mass."""
    total = sum(masses)
    return round(min(1.0, max(0.0, masses[0] / total)), 6) if total > 0 else None
