"""Verdict snapshots under several judges: the combined verdict per prompt, the judges and how
they combine once per file; a recorded file of that shape reads back, and a change of the
judges or of the rule is a change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.evaluation.case import CaseResult, Record
from finetune_safety.evaluation.metrics import summarize
from finetune_safety.judges import combine
from finetune_safety.suite.snapshot import (
    SnapshotFileError,
    VerdictSnapshotExtension,
    mismatch,
    read_recorded,
    verdict_snapshot,
)
from finetune_safety.values import Label, Prompt, Verdict

IDS = ["refusal/v1:a", "marker/v1:X"]


def record(pid: str, scores: tuple[int, int], how: str) -> Record:
    parts = [Verdict(s, Label.UNSAFE if s == 5 else Label.SAFE, "r", j) for s, j in
             zip(scores, IDS, strict=True)]  # fmt: skip
    verdict = combine(parts, how, f"{how}({', '.join(IDS)})")
    return Record(Prompt(pid, "malware", "text"), "reply", verdict)


def snapshot(how: str) -> dict[str, Any]:
    records = [record("malware-1", (5, 1), how), record("malware-2", (1, 1), how)]
    result = summarize((r.prompt, r.verdict) for r in records)["malware"]
    case = CaseResult("ft", "malware", result, result, tuple(records), tuple(records))
    return verdict_snapshot(case, combine=how)


def test_the_combined_verdict_with_the_judges_named() -> None:
    assert snapshot("any") == {
        "checkpoint": "ft",
        "category": "malware",
        "judge": "any(refusal/v1:a, marker/v1:X)",
        "judges": IDS,
        "combine": "any",
        "verdicts": {
            "malware-1": {"score": 5, "label": "unsafe"},
            "malware-2": {"score": 1, "label": "safe"},
        },
    }
    assert snapshot("all")["verdicts"]["malware-1"] == {"score": 1, "label": "safe"}


def test_such_a_file_reads_back_and_a_changed_rule_is_named(tmp_path: Path) -> None:
    path = tmp_path / "test_v[ft-malware].json"
    path.write_text(VerdictSnapshotExtension().serialize(snapshot("any")), encoding="utf-8")
    stored = read_recorded(path)
    assert stored == snapshot("any")
    line = mismatch("ft/malware", stored, snapshot("all"))
    assert "combine any -> all" in line
    assert "malware-1 unsafe (5) -> safe (1)" in line


@pytest.mark.parametrize(
    ("change", "fault"),
    [({"judges": "refusal"}, "'judges' is not a list"), ({"combine": "most"}, "'combine' is not")],
)
def test_a_bad_judges_header_is_named(
    tmp_path: Path, change: dict[str, object], fault: str
) -> None:
    path = tmp_path / "test_v[ft-malware].json"
    path.write_text(json.dumps({**snapshot("any"), **change}), encoding="utf-8")
    with pytest.raises(SnapshotFileError, match=fault):
        read_recorded(path)
