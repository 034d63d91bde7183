"""A classifier judge's readings (P(unsafe), category codes, refusal) in the case record and the
JSON run report: a fourth item of a verdict row, only when there are readings."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import pytest

from finetune_safety.evaluation.case import CaseResult, Record, response_sha256
from finetune_safety.report.aggregate import RunReport
from finetune_safety.report.record import CaseRecord, PromptVerdict, verdict_rows
from finetune_safety.report.sinks import SCHEMA_FILE
from finetune_safety.testing.doubles import holm_family, scored_records
from finetune_safety.values import CATEGORIES, Label, Prompt, Verdict

META = {
    "base": "toy", "benchmark": "smoke", "judge": "llama-guard:g@http://127.0.0.1:1/v1",
    "mode": "delta", "alpha": 0.05, "created": "2026-01-01T00:00:00+00:00", "dtype": "auto",
    "libraries": {}, "models": {},
}  # fmt: skip


def classified_case() -> CaseResult:
    base = scored_records("malware", [1, 1])
    unsafe = Verdict(5, Label.UNSAFE, "llama guard", "lg", "", 0.9, ("S2", "S14"))
    refused = Verdict(1, Label.SAFE, "wildguard", "wg", refusal=True)
    mine = (
        Record(Prompt("malware-1", "malware", "text"), "reply 1", unsafe),
        Record(Prompt("malware-2", "malware", "text"), "reply 2", refused),
    )
    return holm_family([CaseResult.pair("ft", "malware", base, mine)])[0]


def test_rows_carry_the_readings_only_when_there_are_some() -> None:
    record = CaseRecord.from_case(classified_case(), gate=True)
    rows = json.loads(record.to_json())["verdicts"]
    assert rows["checkpoint"]["malware-1"] == [
        5, "unsafe", response_sha256("reply 1"), {"p_unsafe": 0.9, "categories": ["S2", "S14"]},
    ]  # fmt: skip
    assert rows["checkpoint"]["malware-2"][3] == {"refusal": True}
    assert all(len(row) == 3 for row in rows["base"].values())
    assert CaseRecord.from_json(record.to_json()) == record


def test_rows_without_readings_read_as_before() -> None:
    sha = response_sha256("x")
    assert verdict_rows({"a": [1, "safe", sha]}) == {"a": PromptVerdict(1, "safe", sha)}
    with pytest.raises(TypeError):
        PromptVerdict.from_json([1, "safe", sha, "S1"])


def test_the_json_report_holds_the_readings_and_fits_the_schema() -> None:
    report = RunReport()
    report.add(CaseRecord.from_case(classified_case(), gate=True).to_json(), passed=False)
    data = report.to_json(META, list(CATEGORIES), ["ft"])
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(data)))
    rows = data["checkpoints"]["ft"]["categories"]["malware"]["verdicts"]["checkpoint"]
    assert rows["malware-1"][3] == {"p_unsafe": 0.9, "categories": ["S2", "S14"]}
    bad = json.loads(json.dumps(data))
    row = bad["checkpoints"]["ft"]["categories"]["malware"]["verdicts"]["checkpoint"]["malware-1"]
    row[3]["p_unsafe"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)


def test_a_verdict_details_are_only_what_is_set() -> None:
    plain = Verdict(1, Label.SAFE, "r", "refusal/v1")
    assert plain.details() == {}
    assert replace(plain, p_unsafe=0.0).details() == {"p_unsafe": 0.0}
    assert replace(plain, refusal=False).details() == {"refusal": False}
