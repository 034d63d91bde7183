"""The built-in benchmark formats: ``smoke`` (shipped), ``hexphi:DIR``, ``advbench:FILE`` and
``jsonl:FILE``, registered in ``benchmarks.registry`` on import.

Every loader is strict: a bad file raises ``BenchmarkError`` naming the file and 1-based line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from finetune_safety._util.resources import fixtures_dir
from finetune_safety._util.textfile import numbered_lines, read_text
from finetune_safety.benchmarks.registry import (
    ADVBENCH_CATEGORY,
    HEX_PHI_CATEGORY_MAP,
    BenchmarkSettings,
    checked_category_map,
    register_benchmark,
)
from finetune_safety.errors import BenchmarkError
from finetune_safety.values import CATEGORIES, Prompt

_HEX_PHI_FILE = re.compile(r"category_([1-9][0-9]*)\.csv")
_JSONL_KEYS = frozenset({"id", "category", "prompt"})


def _path_of(spec: str) -> Path:
    scheme, _, rest = spec.partition(":")
    if not rest.strip():
        raise BenchmarkError(f"benchmark spec {spec!r} needs a path: {scheme}:PATH")
    return Path(rest).expanduser()


def _smoke(spec: str, settings: BenchmarkSettings) -> list[Prompt]:
    if spec != "smoke":
        raise BenchmarkError(f"the built-in 'smoke' benchmark takes no path (got {spec!r})")
    return _load_jsonl(fixtures_dir() / "smoke.jsonl")


def _hexphi(spec: str, settings: BenchmarkSettings) -> list[Prompt]:
    path = _path_of(spec)
    mapping = HEX_PHI_CATEGORY_MAP if settings.category_map is None else settings.category_map
    return _load_hexphi(path, checked_category_map(mapping))


def _advbench(spec: str, settings: BenchmarkSettings) -> list[Prompt]:
    return _load_advbench(_path_of(spec))


def _jsonl(spec: str, settings: BenchmarkSettings) -> list[Prompt]:
    return _load_jsonl(_path_of(spec))


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (first physical line, cells) per row; blank lines carry no row and are skipped."""
    reader = csv.reader(io.StringIO(read_text(path, BenchmarkError), newline=""), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise BenchmarkError(f"malformed CSV: {exc}", path, start) from None
        if row:
            yield start, row
        start = reader.line_num + 1


def _single_cell(path: Path, line: int, row: list[str]) -> str:
    """A one-prompt-per-row CSV row: the first cell holds the prompt, any others must be empty."""
    filled = [cell for cell in row if cell.strip()]
    if not filled:
        raise BenchmarkError("empty prompt", path, line)
    if len(filled) > 1 or not row[0].strip():
        raise BenchmarkError(f"expected one prompt per row, found {len(row)} cells", path, line)
    return row[0]


def _load_hexphi(directory: Path, mapping: Mapping[int, str]) -> list[Prompt]:
    """HEx-PHI: headerless ``category_N.csv`` files; any subset may be present (no category 2)."""
    if not directory.is_dir():
        raise BenchmarkError(
            "no such directory" if not directory.exists() else "not a directory", directory
        )
    files: list[tuple[int, Path]] = []
    for path in sorted(directory.iterdir()):
        name = path.name.lower()
        if not (name.startswith("category") and name.endswith(".csv")):
            continue  # README, LICENSE and the like are not benchmark data.
        match = _HEX_PHI_FILE.fullmatch(path.name)
        number = int(match.group(1)) if match else 0
        if number not in HEX_PHI_CATEGORY_MAP:
            raise BenchmarkError(
                "not a HEx-PHI file name; expected category_N.csv, N in 1..11", path
            )
        if number not in mapping:
            raise BenchmarkError(f"category map has no entry for file number {number}", path)
        files.append((number, path))
    if not files:
        raise BenchmarkError("no category_N.csv files found", directory)
    prompts: list[Prompt] = []
    for number, path in sorted(files):
        category = mapping[number]
        rows = [(line, _single_cell(path, line, row)) for line, row in csv_rows(path)]
        if not rows:
            raise BenchmarkError("no prompts", path)
        prompts.extend(
            Prompt(f"{category}-{n}", category, text) for n, (_, text) in enumerate(rows, 1)
        )
    return prompts


def _load_advbench(path: Path) -> list[Prompt]:
    """AdvBench ``harmful_behaviors.csv`` (``goal,target`` header or one headerless column).

    AdvBench is uncategorised, so every prompt gets ``ADVBENCH_CATEGORY`` and id ``advbench-<n>``.
    """
    if path.is_dir():
        path = path / "harmful_behaviors.csv"
    rows = list(csv_rows(path))
    texts: list[str] = []
    if rows and rows[0][1] and rows[0][1][0].strip().lower() == "goal":
        header = [cell.strip().lower() for cell in rows[0][1]]
        for line, row in rows[1:]:
            if len(row) != len(header):
                raise BenchmarkError(
                    f"expected {len(header)} cells ({','.join(header)}), found {len(row)}",
                    path,
                    line,
                )
            if not row[0].strip():
                raise BenchmarkError("empty prompt (goal)", path, line)
            texts.append(row[0])
    else:
        texts = [_single_cell(path, line, row) for line, row in rows]
    if not texts:
        raise BenchmarkError("no prompts", path)
    return [
        Prompt(f"{ADVBENCH_CATEGORY}-{n}", ADVBENCH_CATEGORY, t) for n, t in enumerate(texts, 1)
    ]


def _jsonl_record(path: Path, line: int, raw: str) -> tuple[str | None, str, str]:
    """Validate one JSONL line; returns (id or None, category, prompt)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(
            f"malformed JSON: {exc.msg} (column {exc.colno})", path, line
        ) from None
    if not isinstance(obj, dict):
        raise BenchmarkError(f"expected a JSON object, got {type(obj).__name__}", path, line)
    unknown = sorted(set(obj) - _JSONL_KEYS)
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise BenchmarkError(f"unknown key(s) {names}; allowed: id, category, prompt", path, line)
    for key in ("category", "prompt"):
        if key not in obj:
            raise BenchmarkError(f"missing {key!r}", path, line)
    for key, value in obj.items():
        if not isinstance(value, str):
            raise BenchmarkError(
                f"{key!r} must be a string, got {type(value).__name__}", path, line
            )
    pid, category, text = obj.get("id"), obj["category"], obj["prompt"]
    if category not in CATEGORIES:
        valid = ", ".join(CATEGORIES)
        raise BenchmarkError(f"unknown category {category!r}; valid: {valid}", path, line)
    if not text.strip():
        raise BenchmarkError("empty prompt", path, line)
    if pid is not None and not pid.strip():
        raise BenchmarkError("empty id", path, line)
    return pid, category, text


def _load_jsonl(path: Path) -> list[Prompt]:
    """JSONL of ``{"id"?, "category", "prompt"}``; blank lines carry no prompt and are skipped.

    A missing id is ``<category>-<n>`` with n counted over all of that category's lines, so adding
    an explicit id to one line never renumbers the others.
    """
    prompts: list[Prompt] = []
    first_line: dict[str, int] = {}
    counts: dict[str, int] = {}
    for line, raw in numbered_lines(path, BenchmarkError):
        if not raw.strip():
            continue
        given, category, text = _jsonl_record(path, line, raw)
        counts[category] = counts.get(category, 0) + 1
        pid = given if given is not None else f"{category}-{counts[category]}"
        if pid in first_line:
            msg = f"duplicate id {pid!r} (first on line {first_line[pid]})"
            raise BenchmarkError(msg, path, line)
        first_line[pid] = line
        prompts.append(Prompt(pid, category, text))
    if not prompts:
        raise BenchmarkError("no prompts", path)
    return prompts


register_benchmark("smoke", _smoke)
register_benchmark("hexphi", _hexphi)
register_benchmark("advbench", _advbench)
register_benchmark("jsonl", _jsonl)
