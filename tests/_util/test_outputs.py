"""Output paths are checked when a run starts, not when it ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety._util.outputs import OutputPathError, check_output_file


def test_a_file_path_is_accepted_and_missing_parents_are_fine(tmp_path: Path) -> None:
    assert check_output_file(tmp_path / "a" / "b" / "report.json", "--x") == (
        tmp_path / "a" / "b" / "report.json"
    )


def test_a_directory_is_refused_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError) as info:
        check_output_file(tmp_path, "--safety-report-json")
    assert str(info.value) == (
        f"--safety-report-json {tmp_path}: is a directory; give a file path in it"
    )


def test_a_file_in_the_way_of_the_parent_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(OutputPathError, match="blocker is a file, not a directory"):
        check_output_file(tmp_path / "blocker" / "sub" / "r.md", "--out")
