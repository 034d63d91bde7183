"""When a run may call a verdict snapshot unused: only after the whole gate ran on every prompt,
and only a file of the gate's snapshot folders that no snapshot test of the run checks."""

from __future__ import annotations

import json
from pathlib import Path

from finetune_safety.suite.snapshot_guard import GateSelection

NAME = "test_verdicts_match_snapshot[{}].json"


def selection(
    tmp_path: Path, selected: int = 3, whole: int = 3, limit: int | None = None
) -> GateSelection:
    folder = tmp_path / "__snapshots__" / "test_safety"
    return GateSelection(
        selected=frozenset(f"t::test[{i}]" for i in range(selected)),
        whole=whole,
        limit=limit,
        recorded=frozenset({str(folder / NAME.format("a-malware"))}),
        folders=frozenset({(str(folder), "test_verdicts_match_snapshot[")}),
    )


def test_a_run_is_whole_only_when_every_gate_test_of_the_configuration_ran(tmp_path: Path) -> None:
    ran = {f"t::test[{i}]" for i in range(3)}
    assert selection(tmp_path).partial(ran) is None
    assert selection(tmp_path).partial(ran | {"other::test"}) is None
    assert selection(tmp_path).partial(ran - {"t::test[1]"}) == "2 of 3 gate tests ran"
    assert selection(tmp_path, selected=2).partial(ran) == "2 of 3 gate tests selected"
    limited = selection(tmp_path, limit=4).partial(ran)
    assert limited == "--safety-limit 4: the first 4 prompt(s) per category"


def test_unused_are_the_gate_files_no_selected_test_checks(tmp_path: Path) -> None:
    folder = tmp_path / "__snapshots__" / "test_safety"
    folder.mkdir(parents=True)
    for name in (
        NAME.format("a-malware"),  # checked by the run
        NAME.format("gone-malware"),  # a checkpoint no longer configured
        "test_mine.json",  # a test of the user's own in the same module
        NAME.format("gone-illegal_activity").replace(".json", ".ambr"),
    ):
        (folder / name).write_text("{}", encoding="utf-8")
    assert selection(tmp_path).unused() == [folder / NAME.format("gone-malware")]


def test_a_selection_travels_from_an_xdist_worker_unchanged(tmp_path: Path) -> None:
    chosen = selection(tmp_path, selected=2, limit=1)
    assert GateSelection.from_json(json.loads(json.dumps(chosen.to_json()))) == chosen
