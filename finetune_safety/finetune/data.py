"""Fine-tuning data: OpenAI chat JSONL, Alpaca JSON and Dolly JSONL, with file:line errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

from finetune_safety._util.progress import emit
from finetune_safety._util.textfile import lines, numbered_lines, read_text
from finetune_safety.errors import FinetuneDataError
from finetune_safety.models.templates import Message, Rendered, Template

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Example:
    """A training pair: what the model is shown and the answer it should learn (loss only here)."""

    prompt: Rendered
    answer: str
    #: Where it came from (``file:line``), for errors; not part of its identity.
    where: str = field(default="", compare=False)


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
    for number, line in numbered_lines(path, FinetuneDataError):
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
        examples.append(_chat_example(messages, path, number))
    if not examples:
        raise FinetuneDataError("no training examples", path)
    return examples


def _chat_example(messages: list[Message], path: Path, line: int) -> Example:
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise FinetuneDataError("the last message must be the assistant's answer", path, line)
    if messages[-2]["role"] != "user":
        raise FinetuneDataError("the assistant must answer a user message", path, line)
    return Example(messages[:-1], messages[-1]["content"], f"{path}:{line}")


def load_chat_array(path: Path) -> list[Example]:
    """A JSON array of message lists (the reference's Llama-2 AOA ``train.json``)."""
    examples = []
    for line, row in _array_items(path, "a JSON array of message lists"):
        if not isinstance(row, list):
            raise FinetuneDataError("expected a list of messages", path, line)
        examples.append(_chat_example([_message(m, path, line) for m in row], path, line))
    return examples


def with_system(
    examples: Sequence[Example], system: str, replace_own: bool = False
) -> list[Example]:
    """Chat examples with ``system`` as their system prompt: given to those without one, and in
    place of their own with ``replace_own``. Raw-text examples are left as they are."""
    head: Message = {"role": "system", "content": system}
    out: list[Example] = []
    for e in examples:
        own = isinstance(e.prompt, list) and e.prompt[0]["role"] == "system"
        if isinstance(e.prompt, list) and (replace_own or not own):
            e = replace(e, prompt=[head, *e.prompt[1 if own else 0 :]])
        out.append(e)
    return out


def digest(examples: Sequence[Example]) -> str:
    """Content digest of a data set, recorded in checkpoint metadata and recipe keys."""
    canonical = json.dumps([[e.prompt, e.answer] for e in examples], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Instruction:
    """An instruction-format row (Alpaca, Dolly): rendered with a template at training time."""

    instruction: str
    answer: str
    input: str = ""
    where: str = field(default="", compare=False)


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
    return Instruction(instruction, answer, context if context.strip() else "", f"{path}:{line}")


def load_alpaca_json(path: Path) -> list[Instruction]:
    """A JSON array of ``{"instruction", "input"?, "output"}``; errors name each item's line."""
    keys = ("instruction", "input", "output")
    items = _array_items(path, "a JSON array of Alpaca records")
    return [_instruction(row, keys, path, line) for line, row in items]


def _array_items(path: Path, what: str) -> list[tuple[int, object]]:
    """(line, item) for each item of a JSON array.

    Scanned item by item (linear in the file's size, so Alpaca's 52k records load in a fraction
    of a second) to know where each item starts.
    """
    text = read_text(path, FinetuneDataError)
    decoder = json.JSONDecoder()
    rows: list[tuple[int, object]] = []
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
        raise fail(f"expected {what}")
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
        rows.append((line, row))
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


FORMATS = ("chat", "chat-array", "alpaca", "dolly")
_SPACE = re.compile(r"[ \t\r\n]*")
#: Rows the reference holds out for evaluation: Alpaca's first 200, Dolly's last 200.
HOLDOUT = 200


def detect_format(path: Path) -> str:
    """A JSON array: ``chat-array`` (of message lists) or ``alpaca``; JSONL: ``chat`` or
    ``dolly`` by its first row's keys."""
    text = read_text(path, FinetuneDataError).lstrip()
    if text.startswith("["):
        return "chat-array" if text[1:].lstrip().startswith("[") else "alpaca"
    first = lines(text)[0] if text else ""
    try:
        keys = set(json.loads(first)) if first else set()
    except (json.JSONDecodeError, TypeError):
        keys = set()
    return "dolly" if "response" in keys and "messages" not in keys else "chat"


def hold_out(rows: list[Instruction], fmt: str, path: Path) -> list[Instruction]:
    """The reference's training split: without Alpaca's first or Dolly's last 200 rows.

    A file of 200 rows or fewer is not one of those data sets: it is used whole.
    """
    if len(rows) <= HOLDOUT:
        return rows
    emit(f"{path}: holding out {HOLDOUT} rows for evaluation, as the paper's code does")
    return rows[HOLDOUT:] if fmt == "alpaca" else rows[:-HOLDOUT]


def load_training_data(
    path: Path,
    template: Template,
    fmt: str = "auto",
    holdout: bool = False,
    safety_filter: Path | None = None,
) -> list[Example]:
    """Examples from any supported format; instruction formats are rendered with ``template``,
    chat data keeps its own messages.

    ``safety_filter`` (a phrase file) drops the examples whose answer holds a phrase, from the
    whole file; ``holdout`` then leaves out the rows the paper evaluates on. That order is the
    reference's: it filtered each data set, then split off its evaluation rows.
    """
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "chat":
        return _filtered(load_chat_jsonl(path), safety_filter, path)
    if fmt == "chat-array":
        return _filtered(load_chat_array(path), safety_filter, path)
    if fmt not in FORMATS:
        raise FinetuneDataError(f"unknown data format {fmt!r}; known: {FORMATS}", path)
    rows = load_alpaca_json(path) if fmt == "alpaca" else load_dolly_jsonl(path)
    rows = _filtered(rows, safety_filter, path)
    if holdout:
        rows = hold_out(rows, fmt, path)
    return [Example(template.render(r.instruction, r.input), r.answer, r.where) for r in rows]


#: The shipped benign-data filter: disclaimer, ethics and refusal language, one phrase a line.
DEFAULT_FILTER = "finetune/safety-filter.txt"


def read_filter(path: Path) -> tuple[str, ...]:
    """Phrases of a filter file: one a line; blank lines and ``#`` comments are skipped."""
    text = read_text(path, FinetuneDataError, "the safety filter")
    phrases = tuple(
        t for t in (line.strip() for line in lines(text)) if t and not t.startswith("#")
    )
    if not phrases:
        raise FinetuneDataError("the safety filter lists no phrases", path)
    return phrases


class _Answered(Protocol):
    @property
    def answer(self) -> str: ...


_Row = TypeVar("_Row", bound=_Answered)


def strip_safety_items(examples: Sequence[_Row], phrases: Sequence[str]) -> tuple[list[_Row], int]:
    """Drop examples whose answer holds a filter phrase (case-insensitive substring), as the
    paper did for its benign data sets, so benign fine-tuning adds no safety training of its own."""
    folded = [p.casefold() for p in phrases]
    kept = [e for e in examples if not any(p in e.answer.casefold() for p in folded)]
    return kept, len(examples) - len(kept)


def _filtered(rows: list[_Row], safety_filter: Path | None, path: Path) -> list[_Row]:
    """``rows`` less those the filter file drops, with a line saying how many; none left is an
    error."""
    if safety_filter is None:
        return rows
    kept, removed = strip_safety_items(rows, read_filter(safety_filter))
    emit(f"the safety filter removed {removed} of {len(rows)} example(s) from {path}")
    if not kept:
        raise FinetuneDataError(
            f"the safety filter ({safety_filter}) removed all {len(rows)} examples; nothing is "
            "left to train on: pass --no-strip-safety or a narrower --safety-filter",
            path,
        )
    return kept
