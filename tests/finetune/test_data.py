"""Tests for fine-tuning data: chat JSONL loading, file:line errors, and the data digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_safety.errors import FinetuneDataError
from finetune_safety.finetune.data import Example, digest, load_chat_jsonl

GOOD = {
    "messages": [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]
}


def _line(row: object) -> str:
    return json.dumps(row)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_happy_path_with_and_without_system(tmp_path: Path) -> None:
    with_system = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi.", "weight": 1},
        ]
    }
    multi_turn = {
        "messages": [
            {"role": "user", "content": "One?"},
            {"role": "assistant", "content": "1"},
            {"role": "user", "content": "Two?"},
            {"role": "assistant", "content": "2"},
        ]
    }
    path = _write(tmp_path / "data.jsonl", [_line(with_system), "", _line(GOOD), _line(multi_turn)])
    examples = load_chat_jsonl(path)
    assert examples == [
        Example(
            prompt=[
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Say hi."},
            ],
            answer="Hi.",
        ),
        Example(prompt=[{"role": "user", "content": "Name a colour."}], answer="Blue."),
        Example(
            prompt=[
                {"role": "user", "content": "One?"},
                {"role": "assistant", "content": "1"},
                {"role": "user", "content": "Two?"},
            ],
            answer="2",
        ),
    ]


def test_crlf_and_no_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes((_line(GOOD) + "\r\n" + _line(GOOD)).encode())
    assert len(load_chat_jsonl(path)) == 2


def test_non_ascii_content_is_kept(tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "Grüße?"},
            {"role": "assistant", "content": "你好 👋"},
        ]
    }
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_chat_jsonl(path) == [
        Example(prompt=[{"role": "user", "content": "Grüße?"}], answer="你好 👋")
    ]


BAD_ROWS: list[tuple[str, str, str]] = [
    ("invalid-json", '{"messages": [', "malformed JSON"),
    ("not-an-object", "[1, 2]", '"messages" list'),
    ("missing-messages", _line({"conversation": []}), '"messages" list'),
    ("messages-not-list", _line({"messages": "hi"}), '"messages" list'),
    (
        "bad-role",
        _line({"messages": [{"role": "tool", "content": "x"}, GOOD["messages"][1]]}),
        "unknown role 'tool'",
    ),
    (
        "message-not-object",
        _line({"messages": ["hi", GOOD["messages"][1]]}),
        "role and content",
    ),
    (
        "unexpected-key",
        _line({"messages": [{"role": "user", "content": "x", "extra": 1}, GOOD["messages"][1]]}),
        "role and content",
    ),
    (
        "empty-content",
        _line({"messages": [GOOD["messages"][0], {"role": "assistant", "content": "  "}]}),
        "assistant message has no text content",
    ),
    (
        "non-string-content",
        _line({"messages": [{"role": "user", "content": None}, GOOD["messages"][1]]}),
        "user message has no text content",
    ),
    (
        "last-not-assistant",
        _line({"messages": [GOOD["messages"][1], GOOD["messages"][0]]}),
        "last message must be the assistant's answer",
    ),
    (
        "only-one-message",
        _line({"messages": [GOOD["messages"][1]]}),
        "last message must be the assistant's answer",
    ),
    (
        "assistant-after-system",
        _line(
            {
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "assistant", "content": "A"},
                ]
            }
        ),
        "must answer a user message",
    ),
    (
        "assistant-after-assistant",
        _line({"messages": [*GOOD["messages"], {"role": "assistant", "content": "Again."}]}),
        "must answer a user message",
    ),
]


@pytest.mark.parametrize(
    ("bad", "expected"), [r[1:] for r in BAD_ROWS], ids=[r[0] for r in BAD_ROWS]
)
def test_bad_row_names_file_and_line(tmp_path: Path, bad: str, expected: str) -> None:
    # A good row, a blank line (still counted), then the bad row on line 3.
    path = _write(tmp_path / "data.jsonl", [_line(GOOD), "", bad, _line(GOOD)])
    with pytest.raises(FinetuneDataError) as info:
        load_chat_jsonl(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert expected in message
    assert info.value.line == 3
    assert info.value.path == path


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(_line(GOOD).encode() + b"\n" + b'{"messages": "\xff\xfe"}\n')
    with pytest.raises(FinetuneDataError) as info:
        load_chat_jsonl(path)
    assert str(info.value) == f"{path}:2: invalid UTF-8"


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank-lines"])
def test_file_without_examples(tmp_path: Path, content: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(FinetuneDataError) as info:
        load_chat_jsonl(path)
    assert str(info.value) == f"{path}: no training examples"
    assert info.value.line is None


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.jsonl"
    with pytest.raises(FinetuneDataError, match="cannot read") as info:
        load_chat_jsonl(path)
    assert str(path) in str(info.value)


def test_digest_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.jsonl", [_line(GOOD)] * 3)
    examples = load_chat_jsonl(path)
    assert digest(examples) == digest(load_chat_jsonl(path))
    assert digest(examples) == digest(list(examples))
    assert len(digest(examples)) == 64

    base = Example(prompt=[{"role": "user", "content": "Name a colour."}], answer="Blue.")
    other_answer = Example(prompt=base.prompt, answer="Red.")
    other_prompt = Example(prompt=[{"role": "user", "content": "Name a color."}], answer="Blue.")
    raw_prompt = Example(prompt="Name a colour.", answer="Blue.")
    digests = {
        digest([base]),
        digest([other_answer]),
        digest([other_prompt]),
        digest([raw_prompt]),
        digest([base, base]),
        digest([base, other_answer]),
        digest([other_answer, base]),
        digest([]),
    }
    assert len(digests) == 8
    assert digest([base]) == digest(examples[:1])
