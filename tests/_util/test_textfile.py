"""The one reader for text files users bring: UTF-8 (BOM dropped), failing at file:line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from finetune_safety._util.textfile import lines, numbered_lines, read_text
from finetune_safety.errors import BenchmarkError, FinetuneDataError, JudgeError, LocatedError
from finetune_safety.finetune.data import load_chat_jsonl, read_filter
from finetune_safety.finetune.openai_jobs import validate_openai_jsonl
from finetune_safety.judges.rubric import JudgePrompt


def test_utf8_with_a_bom_reads_as_its_text(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo \xe2\x80\xa8 still two\n")
    assert read_text(path, LocatedError) == "one\r\ntwo \u2028 still two\n"
    assert numbered_lines(path, LocatedError) == [(1, "one"), (2, "two \u2028 still two"), (3, "")]


def test_no_text_has_no_lines() -> None:
    assert lines("") == []
    assert lines("\n") == ["", ""]


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (b"ok\nok\n\xff\n", 3, "invalid UTF-8"),
        (b"ok\nx\x00y\n", 2, "NUL byte (byte offset 4): not a text file (UTF-16, or binary?)"),
        ("ok".encode("utf-16"), 1, "invalid UTF-8"),
    ],
    ids=["bad-byte", "nul", "utf-16"],
)
def test_a_file_that_is_not_utf8_text_fails_at_its_line(
    tmp_path: Path, content: bytes, line: int, fragment: str
) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(content)
    with pytest.raises(BenchmarkError) as info:
        read_text(path, BenchmarkError)
    assert str(info.value).startswith(f"{path}:{line}: {fragment}")


def test_what_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(FinetuneDataError) as info:
        read_text(tmp_path / "none.txt", FinetuneDataError)
    assert str(info.value) == f"{tmp_path / 'none.txt'}: cannot read: no such file"
    with pytest.raises(JudgeError) as judge:
        read_text(tmp_path, JudgeError, "the judge prompt")
    assert str(judge.value) == f"{tmp_path}: cannot read the judge prompt: not a file"


def test_every_loader_of_user_text_reads_through_it(tmp_path: Path) -> None:
    """Fine-tuning data, OpenAI uploads, filters and judge prompts all reject a NUL byte at
    its line (before, some took it as malformed JSON or as part of a prompt)."""
    path = tmp_path / "bad.txt"
    path.write_bytes(b"first\nsec\x00ond {instruction} {response}\n")
    loaders = [load_chat_jsonl, validate_openai_jsonl, read_filter, JudgePrompt.from_file]
    for load in loaders:
        with pytest.raises(LocatedError, match="^" + re.escape(f"{path}:2: NUL byte")):
            load(path)
