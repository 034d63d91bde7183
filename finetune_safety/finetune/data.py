"""Fine-tuning data: OpenAI chat JSONL, Alpaca JSON and Dolly JSONL, with file:line errors."""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
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


def _jsonl_rows(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed row) for each non-blank line; bad JSON names its line."""
    for number, line in enumerate(_lines(_decoded(path)), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(f"malformed JSON: {exc.msg}", path, number) from None


def load_chat_jsonl(path: Path) -> list[Example]:
    """``{"messages": [...]}`` per line; the last message is the assistant answer to learn."""
    examples: list[Example] = []
    for number, row in _jsonl_rows(path):
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
        raw = path.read_bytes()
    except OSError as exc:
        raise FinetuneDataError(f"cannot read: {exc.strerror}", path) from None
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: bom + exc.start].count(b"\n") + 1
        raise FinetuneDataError("invalid UTF-8", path, line) from None


def _lines(text: str) -> list[str]:
    """Split on newlines only: JSON strings may hold U+2028 and friends, which splitlines cuts."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def load_alpaca_json(path: Path) -> list[Instruction]:
    """A JSON array of ``{"instruction", "input"?, "output"}``; errors name each item's line.

    Scanned item by item (linear in the file's size, so Alpaca's 52k records load in a fraction
    of a second) to know where each item starts.
    """
    text = _decoded(path)
    decoder, rows = json.JSONDecoder(), []
    index, line = 0, 1

    def skip() -> None:
        nonlocal index, line
        end = _SPACE.match(text, index).end()  # type: ignore[union-attr]
        line, index = line + text.count("\n", index, end), end

    def fail(message: str) -> FinetuneDataError:
        return FinetuneDataError(message, path, line)

    skip()
    if not text.startswith("[", index):
        line = line if index < len(text) else 1
        raise fail("expected a JSON array of Alpaca records")
    index += 1
    skip()
    if text.startswith("]", index):
        raise FinetuneDataError("no training examples", path)
    while True:
        if index >= len(text):
            raise fail("unterminated JSON array")
        try:
            row, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(f"malformed JSON: {exc.msg}", path, exc.lineno) from None
        rows.append(_instruction(row, ("instruction", "input", "output"), path, line))
        line, index = line + text.count("\n", index, end), end
        skip()
        if index >= len(text):
            raise fail("unterminated JSON array")
        if text.startswith("]", index):
            break
        if not text.startswith(",", index):
            raise fail("malformed JSON: expected ',' or ']' after an item")
        index += 1
        skip()
    index += 1
    skip()
    if index < len(text):
        raise fail("malformed JSON: data after the array")
    return rows


def load_dolly_jsonl(path: Path) -> list[Instruction]:
    """``{"instruction", "context"?, "response", "category"?}`` per line (databricks-dolly)."""
    keys = ("instruction", "context", "response")
    rows = [_instruction(row, keys, path, number) for number, row in _jsonl_rows(path)]
    if not rows:
        raise FinetuneDataError("no training examples", path)
    return rows


FORMATS = ("chat", "alpaca", "dolly")
_SPACE = re.compile(r"[ \t\r\n]*")


def detect_format(path: Path) -> str:
    """``alpaca`` for a .json array, ``chat`` or ``dolly`` for JSONL by its first row's keys."""
    text = _decoded(path).lstrip()
    if text.startswith("["):
        return "alpaca"
    first = _lines(text)[0] if text else ""
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
