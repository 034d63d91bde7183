"""Scripted log-probabilities for the fake server, in the two shapes real servers send.

``chat_logprobs``: the OpenAI chat shape (vLLM, llama.cpp's ``llama-server``), ``{"content":
[{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}``. ``legacy_logprobs``: the
completions shape (every ``/v1/completions``, and older llama-cpp-python chat replies),
``{tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_PIECES = re.compile(r"\s+|[^\s,]+|,")


@dataclass(frozen=True)
class Token:
    """One token of a reply: its text, its logprob, and the alternatives (text -> logprob) a
    server lists for its position."""

    text: str
    logprob: float = 0.0
    top: Mapping[str, float] = field(default_factory=dict)


def answer(text: str, alternatives: Mapping[str, float] | None = None) -> tuple[Token, ...]:
    """``text`` as tokens (runs of blanks, words, commas); the first word's position lists
    ``alternatives`` (text -> probability), and its own logprob comes from there."""
    tokens: list[Token] = []
    given = dict(alternatives or {})
    for piece in _PIECES.findall(text):
        if given and piece.strip() and not any(t.text.strip() for t in tokens):
            top = {t: math.log(p) for t, p in given.items() if p > 0}
            tokens.append(Token(piece, top.get(piece, math.log(1e-6)), top))
        else:
            tokens.append(Token(piece, 0.0, {piece: 0.0}))
    return tuple(tokens)


def _top(tokens: Token) -> list[dict[str, Any]]:
    return [
        {"token": t, "logprob": lp, "bytes": list(t.encode())}
        for t, lp in sorted(tokens.top.items(), key=lambda kv: -kv[1])
    ]


def chat_logprobs(tokens: Sequence[Token]) -> dict[str, Any]:
    content = [
        {
            "token": t.text,
            "logprob": t.logprob,
            "bytes": list(t.text.encode()),
            "top_logprobs": _top(t),
        }
        for t in tokens
    ]
    return {"content": content, "refusal": None}


def legacy_logprobs(tokens: Sequence[Token]) -> dict[str, Any]:
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t.text)
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": offsets,
    }
