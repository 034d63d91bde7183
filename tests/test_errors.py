"""Errors that name their place (option, file, line) all lead their message the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety._util.outputs import OutputPathError
from finetune_safety.errors import (
    BenchmarkError,
    FinetuneDataError,
    FinetuneSafetyError,
    JudgeError,
    LocatedError,
    ModelLoadError,
    StoreError,
)
from finetune_safety.report.diff import DiffError
from finetune_safety.suite.snapshot import SnapshotFileError


@pytest.mark.parametrize(
    ("path", "line", "option", "shown"),
    [
        (Path("data.jsonl"), 3, None, "data.jsonl:3: bad row"),
        ("data.jsonl", None, None, "data.jsonl: bad row"),
        (None, None, None, "bad row"),
        (None, 4, None, "bad row"),  # a line without its file names nothing
        (Path("out.json"), None, "--safety-report-json", "--safety-report-json out.json: bad row"),
        (None, None, "--judge", "--judge: bad row"),
    ],
)
def test_the_place_leads_the_message(
    path: Path | str | None, line: int | None, option: str | None, shown: str
) -> None:
    error = LocatedError("bad row", path, line, option=option)
    assert str(error) == shown
    assert (error.message, error.path, error.line, error.option) == ("bad row", path, line, option)


LOCATED = (
    *(BenchmarkError, FinetuneDataError, JudgeError, OutputPathError, StoreError, DiffError),
    SnapshotFileError,
)


@pytest.mark.parametrize("kind", [*LOCATED, ModelLoadError])
def test_location_aware_errors_share_the_base(kind: type[LocatedError]) -> None:
    assert issubclass(kind, LocatedError) and issubclass(kind, FinetuneSafetyError)
    assert str(kind("no prompts", "bench.csv", 2)) == "bench.csv:2: no prompts"
