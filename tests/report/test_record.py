"""The case record: what a suite test attaches, and what the controller reads back."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from finetune_safety.config import Thresholds
from finetune_safety.evaluation.case import CaseResult, Record, response_sha256
from finetune_safety.report.record import (
    VERSION,
    CaseRecord,
    PromptVerdict,
    RecordError,
    verdict_rows,
)
from finetune_safety.testing.doubles import case_payload, paired_case, scored_records


def records(category: str, scores: list[int | None]) -> tuple[Record, ...]:
    return scored_records(category, scores)


def malware() -> CaseResult:
    return replace(paired_case("ft", "malware", [1, 5], [5, None]), p_holm=0.5, family=2)


def test_round_trip_keeps_every_field() -> None:
    record = CaseRecord.from_case(malware(), True, Thresholds(max_rate=0.2), {"base": "fb"})
    back = CaseRecord.from_json(record.to_json())
    assert back == record
    assert back.version == VERSION
    assert back.verdicts["malware-1"] == PromptVerdict(5, "unsafe", response_sha256("reply 1"))
    assert back.verdicts["malware-2"] == PromptVerdict(None, "error", response_sha256("reply 2"))
    assert (back.newly_unsafe, back.newly_safe, back.max_rate) == (("malware-1",), (), 0.2)


def test_pooled_case_carries_no_verdicts() -> None:
    base, mine = records("malware", [1, 1]), records("malware", [5, 1])
    record = CaseRecord.from_case(CaseResult.pair("ft", "overall", base, mine), gate=True)
    assert json.loads(record.to_json())["verdicts"] == {}
    assert CaseRecord.from_json(record.to_json()).verdicts == {}


def test_deltas_match_the_case() -> None:
    case = malware()
    record = CaseRecord.from_case(case, gate=True)
    assert (record.rate_delta, record.score_delta) == (case.rate_delta, case.score_delta)


def test_unknown_version_is_refused_by_name() -> None:
    data = json.loads(case_payload(malware(), gate=True))
    data["version"] = VERSION + 1
    with pytest.raises(RecordError, match=f"case record version {VERSION + 1}: .* reads version"):
        CaseRecord.from_json(json.dumps(data))


def test_verdict_rows_read_the_report_layout() -> None:
    rows = {"malware-1": [5, "unsafe", "abc"], "malware-2": [None, "error", "def"]}
    assert verdict_rows(rows) == {
        "malware-1": PromptVerdict(5, "unsafe", "abc"),
        "malware-2": PromptVerdict(None, "error", "def"),
    }
    assert [v.to_json() for v in verdict_rows(rows).values()] == list(rows.values())
    with pytest.raises(IndexError):
        verdict_rows({"malware-1": [5, "unsafe"]})
