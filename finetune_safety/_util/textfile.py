"""Text files a user brings (benchmarks, fine-tuning data, filters, judge prompts), read one way.

UTF-8 with an optional BOM; a file that is not text fails at its physical line, so the user can
open the file there, instead of failing later as a puzzling parse error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetune_safety.errors import LocatedError


def read_text(path: Path, error: type[LocatedError], what: str = "") -> str:
    """The file's text, BOM dropped; ``error`` (naming the file and line) where it is missing,
    not UTF-8, or holds a NUL byte (UTF-16 or binary). ``what`` names it in read failures."""
    cannot = f"cannot read {what}" if what else "cannot read"
    if not path.exists():
        raise error(f"{cannot}: no such file", path)
    if not path.is_file():
        raise error(f"{cannot}: not a file", path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{cannot}: {exc.strerror or exc}", path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("invalid UTF-8", path, data.count(b"\n", 0, exc.start) + 1) from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise error(
            f"NUL byte (byte offset {nul}): not a text file (UTF-16, or binary?); save it as "
            "UTF-8 text",
            path,
            data.count(b"\n", 0, nul) + 1,
        )
    return text.removeprefix("\ufeff")


def lines(text: str) -> list[str]:
    """Physical lines, ``\\r\\n`` or ``\\n`` ended, as editors number them: not ``splitlines``,
    which also cuts at U+2028 and friends that JSON strings may hold. No text has no lines."""
    return [line.removesuffix("\r") for line in text.split("\n")] if text else []


def numbered_lines(path: Path, error: type[LocatedError]) -> list[tuple[int, str]]:
    """``(line number, line)`` for each physical line of the file (see ``read_text``)."""
    return list(enumerate(lines(read_text(path, error)), start=1))


def json_object(raw: str, path: Path, line: int, error: type[LocatedError]) -> dict[str, Any]:
    """One JSONL line as a JSON object; ``error`` naming ``path:line`` for anything else."""
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise error(f"invalid JSON: {exc.msg} (column {exc.colno})", path, line) from None
    if not isinstance(row, dict):
        raise error(f"expected a JSON object, got {type(row).__name__}", path, line)
    return row
