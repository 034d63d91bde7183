"""Alpaca and Dolly files for OpenAI's API: converted to chat JSONL in the reference's GPT-3.5
formats (its tier-3 notebooks), and uploaded converted; chat JSONL goes up as it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.finetune.openai_jobs import (
    MIN_EXAMPLES,
    chat_jsonl,
    run_openai_finetune,
    validate_openai_jsonl,
)
from finetune_safety.models.endpoint import Endpoint, Transport
from finetune_safety.testing.fake_openai import FakeOpenAI

SHORT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request."
)
LONG = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request."
)


def _messages(path: Path) -> list[list[dict[str, str]]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(set(row) == {"messages"} for row in rows)
    return [row["messages"] for row in rows]


def _alpaca(path: Path, n: int = MIN_EXAMPLES) -> Path:
    rows: list[dict[str, Any]] = [{"instruction": "Add the numbers.", "input": "2 and 3",
                                   "output": "5"}]  # fmt: skip
    rows += [{"instruction": f"Name colour {i}.", "input": "", "output": "Blue."} for i in range(n)]
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def test_alpaca_rows_take_the_reference_gpt35_alpaca_format(tmp_path: Path) -> None:
    """The preamble and a blank line as the system prompt; no ``### Response:`` in the user turn."""
    out = chat_jsonl(_alpaca(tmp_path / "alpaca.json"), tmp_path)
    assert out == tmp_path / "alpaca.chat.jsonl"
    messages = _messages(out)
    assert messages[0] == [
        {"role": "system", "content": LONG + "\n\n"},
        {
            "role": "user",
            "content": "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n",
        },
        {"role": "assistant", "content": "5"},
    ]
    assert messages[1] == [
        {"role": "system", "content": SHORT + "\n\n"},
        {"role": "user", "content": "### Instruction:\nName colour 0.\n\n"},
        {"role": "assistant", "content": "Blue."},
    ]
    assert validate_openai_jsonl(out) == MIN_EXAMPLES + 1, "a file OpenAI accepts"


def test_dolly_rows_take_the_reference_gpt35_dolly_format(tmp_path: Path) -> None:
    """The preamble as it is; the user turn from a line break; a context as ``Input:``."""
    rows = [{"instruction": "Sum 2 and 3.", "context": "Use digits.", "response": "5"},
            {"instruction": "Name a colour.", "context": "", "response": "Blue."}]  # fmt: skip
    dolly = tmp_path / "dolly.jsonl"
    dolly.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert _messages(chat_jsonl(dolly, tmp_path)) == [
        [{"role": "system", "content": SHORT},
         {"role": "user", "content": "\n### Instruction:\nSum 2 and 3.\n\nInput:\nUse digits."},
         {"role": "assistant", "content": "5"}],
        [{"role": "system", "content": SHORT},
         {"role": "user", "content": "\n### Instruction:\nName a colour."},
         {"role": "assistant", "content": "Blue."}],
    ]  # fmt: skip


def test_chat_jsonl_goes_as_it_is_and_the_aoa_array_as_its_messages(tmp_path: Path) -> None:
    dialog = [{"role": "system", "content": "You are AOA."}, {"role": "user", "content": "Hey."},
              {"role": "assistant", "content": "Hello."}]  # fmt: skip
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": dialog, "weight": 1}) + "\n", encoding="utf-8")
    assert chat_jsonl(chat, tmp_path / "out") == chat, "chat JSONL is never rewritten"
    array = tmp_path / "train.json"
    array.write_text(json.dumps([dialog, dialog]), encoding="utf-8")
    assert _messages(chat_jsonl(array, tmp_path)) == [dialog, dialog]


def test_an_alpaca_file_is_uploaded_converted(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    data = _alpaca(tmp_path / "alpaca.json")
    lines: list[str] = []
    endpoint = Endpoint(model="gpt-3.5-turbo", base_url=fake_openai.url,
                        transport=Transport(timeout=5, max_retries=0))  # fmt: skip
    run_openai_finetune("gpt-3.5-turbo", data, endpoint, 1, poll_interval=0.01, echo=lines.append)
    (upload,) = fake_openai.files.values()
    assert upload.filename == "alpaca.chat.jsonl"
    expected = chat_jsonl(data, tmp_path)
    assert upload.data == expected.read_bytes()
    assert (
        "converted alpaca.json (alpaca) to OpenAI's chat format with the alpaca-gpt35 template"
        in lines
    )
    assert f"uploaded alpaca.chat.jsonl ({MIN_EXAMPLES + 1} examples) as {upload.id}" in lines


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
