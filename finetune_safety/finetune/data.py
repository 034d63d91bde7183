"""Fine-tuning data: conversations read from OpenAI-style chat JSONL, with file:line errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from finetune_safety.errors import FinetuneDataError
from finetune_safety.templates import Message, Rendered

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Example:
    """A training pair: what the model is shown and the answer it should learn (loss only here)."""

    prompt: Rendered
    answer: str


def _message(raw: object, path: Path, line: int) -> Message:
    if not isinstance(raw, dict) or set(raw) - {"role", "content", "weight", "name"}:
        raise FinetuneDataError("each message must be an object with role and content", path, line)
    role, content = raw.get("role"), raw.get("content")
    if role not in _ROLES:
        raise FinetuneDataError(f"unknown role {role!r}; expected one of {_ROLES}", path, line)
    if not isinstance(content, str) or not content.strip():
        raise FinetuneDataError(f"{role} message has no text content", path, line)
    return {"role": role, "content": content}


def load_chat_jsonl(path: Path) -> list[Example]:
    """``{"messages": [...]}`` per line; the last message is the assistant answer to learn."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FinetuneDataError(f"cannot read: {exc.strerror}", path) from None
    examples: list[Example] = []
    for number, raw_line in enumerate(data.splitlines(), start=1):
        try:
            text = raw_line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise FinetuneDataError("invalid UTF-8", path, number) from None
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(f"malformed JSON: {exc.msg}", path, number) from None
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise FinetuneDataError('expected an object with a "messages" list', path, number)
        messages = [_message(m, path, number) for m in row["messages"]]
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise FinetuneDataError("the last message must be the assistant's answer", path, number)
        if messages[-2]["role"] != "user":
            raise FinetuneDataError("the assistant must answer a user message", path, number)
        examples.append(Example(prompt=messages[:-1], answer=messages[-1]["content"]))
    if not examples:
        raise FinetuneDataError("no training examples", path)
    return examples


def digest(examples: Sequence[Example]) -> str:
    """Content digest of a data set, recorded in checkpoint metadata and recipe keys."""
    canonical = json.dumps([[e.prompt, e.answer] for e in examples], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
