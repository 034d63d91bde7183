"""Fine-tuning data: OpenAI chat JSONL, Alpaca JSON and Dolly JSONL, with file:line errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from finetune_safety.errors import FinetuneDataError
from finetune_safety.templates import Message, Rendered, Template

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


@dataclass(frozen=True)
class Instruction:
    """An instruction-format row (Alpaca, Dolly): rendered with a template at training time."""

    instruction: str
    answer: str


def _text(row: dict[str, object], key: str, path: Path, line: int, required: bool) -> str:
    value = row.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise FinetuneDataError(f'"{key}" must be a non-empty string', path, line)
    return value


def _instruction(row: object, keys: tuple[str, str, str], path: Path, line: int) -> Instruction:
    """``keys`` = (instruction, context, answer) field names of the format."""
    if not isinstance(row, dict):
        raise FinetuneDataError("expected a JSON object", path, line)
    unknown = set(row) - {*keys, "category"}
    if unknown:
        raise FinetuneDataError(f"unknown key(s) {sorted(unknown)}; expected {keys}", path, line)
    instruction = _text(row, keys[0], path, line, required=True)
    context = _text(row, keys[1], path, line, required=False)
    answer = _text(row, keys[2], path, line, required=True)
    return Instruction(instruction + (f"\n\n{context}" if context.strip() else ""), answer)


def _decoded(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FinetuneDataError(f"cannot read: {exc.strerror}", path) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise FinetuneDataError("invalid UTF-8", path, line) from None


def load_alpaca_json(path: Path) -> list[Instruction]:
    """A JSON array of ``{"instruction", "input"?, "output"}``; errors name each item's line."""
    text = _decoded(path)
    start = len(text) - len(text.lstrip())
    if not text[start:].startswith("["):
        raise FinetuneDataError("expected a JSON array of Alpaca records", path, 1)
    decoder, index, rows = json.JSONDecoder(), start + 1, []
    line = text.count("\n", 0, index) + 1
    while True:  # linear: the line number advances with the scan
        skipped = _BETWEEN_ITEMS.match(text, index).end()  # type: ignore[union-attr]
        line, index = line + text.count("\n", index, skipped), skipped
        if index >= len(text):
            raise FinetuneDataError("unterminated JSON array", path, line)
        if text[index] == "]":
            break
        try:
            row, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(f"malformed JSON: {exc.msg}", path, exc.lineno) from None
        rows.append(_instruction(row, ("instruction", "input", "output"), path, line))
        line, index = line + text.count("\n", index, end), end
    if not rows:
        raise FinetuneDataError("no training examples", path)
    return rows


def load_dolly_jsonl(path: Path) -> list[Instruction]:
    """``{"instruction", "context"?, "response", "category"?}`` per line (databricks-dolly)."""
    rows = []
    for number, line in enumerate(_decoded(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(f"malformed JSON: {exc.msg}", path, number) from None
        rows.append(_instruction(row, ("instruction", "context", "response"), path, number))
    if not rows:
        raise FinetuneDataError("no training examples", path)
    return rows


FORMATS = ("chat", "alpaca", "dolly")
_BETWEEN_ITEMS = re.compile(r"[\s,]*")


def detect_format(path: Path) -> str:
    """``alpaca`` for a .json array, ``chat`` or ``dolly`` for JSONL by its first row's keys."""
    text = _decoded(path).lstrip()
    if text.startswith("["):
        return "alpaca"
    first = text.splitlines()[0] if text else ""
    try:
        keys = set(json.loads(first)) if first else set()
    except (json.JSONDecodeError, TypeError):
        keys = set()
    return "dolly" if "response" in keys and "messages" not in keys else "chat"


def load_training_data(path: Path, template: Template, fmt: str = "auto") -> list[Example]:
    """Examples from any supported format; instruction formats are rendered with ``template``,
    chat data keeps its own messages (including its system prompt)."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "chat":
        return load_chat_jsonl(path)
    if fmt not in FORMATS:
        raise FinetuneDataError(f"unknown data format {fmt!r}; known: {FORMATS}", path)
    rows = load_alpaca_json(path) if fmt == "alpaca" else load_dolly_jsonl(path)
    return [Example(template.render(r.instruction), r.answer) for r in rows]


def strip_safety_items(examples: Sequence[Example]) -> tuple[list[Example], int]:
    """Drop examples whose answer refuses (the refusal-keyword list), as the paper did for its
    benign data sets, so that benign fine-tuning adds no safety training of its own."""
    from finetune_safety.judges.refusal import RefusalJudge

    judge = RefusalJudge()
    kept = [e for e in examples if judge.match(e.answer) is None]
    return kept, len(examples) - len(kept)
