"""Several judges in the reports: each judge's verdict in the record and the JSON report, their
agreement (kappa, the disagreeing answers) in the table's footer, the Markdown and the JSON
report; with one judge, nothing of it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from finetune_safety.config import SafetyConfig
from finetune_safety.evaluation.case import CaseResult, Record
from finetune_safety.judges import combine
from finetune_safety.report.aggregate import RunReport
from finetune_safety.report.record import CaseRecord
from finetune_safety.report.render import delta_markdown, delta_table
from finetune_safety.report.sinks import SCHEMA_FILE, ReportFiles
from finetune_safety.testing.doubles import holm_family, scored_records
from finetune_safety.values import CATEGORIES, Label, Prompt, Verdict

JUDGES = ["refusal", "marker"]
ORDER = list(CATEGORIES)


def _verdict(first: int, second: int) -> Verdict:
    parts = [Verdict(s, Label.UNSAFE if s == 5 else Label.SAFE, "r", j) for s, j in
             zip((first, second), JUDGES, strict=True)]  # fmt: skip
    return combine(parts, "any", "any(refusal, marker)")


def _records(side: str, scores: list[tuple[int, int]]) -> tuple[Record, ...]:
    return tuple(
        Record(Prompt(f"malware-{i}", "malware", f"ask {i}"), f"{side} {i}", _verdict(a, b))
        for i, (a, b) in enumerate(scores, 1)
    )


def _report() -> RunReport:
    base = _records("base", [(1, 1), (1, 1), (5, 1)])
    mine = _records("tuned", [(5, 5), (5, 1), (1, 1)])
    case = holm_family([CaseResult.pair("tuned", "malware", base, mine)])[0]
    report = RunReport()
    report.add(CaseRecord.from_case(case, gate=True).to_json(), passed=False)
    return report


def test_records_keep_each_judge_s_verdict() -> None:
    record = CaseRecord.from_case(
        holm_family([CaseResult.pair("t", "malware", *[_records("x", [(5, 1)])] * 2)])[0], True
    )
    row = json.loads(record.to_json())["verdicts"]["checkpoint"]["malware-1"]
    assert row[:2] == [5, "unsafe"] and row[3] == {"judges": [[5, "unsafe"], [1, "safe"]]}
    assert CaseRecord.from_json(record.to_json()) == record


def test_the_footer_gives_kappa_and_the_disagreeing_answers() -> None:
    table = delta_table(_report(), ORDER, ["tuned"], None, JUDGES, "any")
    first, *rest = table.split("\n\n")[-1].splitlines()
    assert first == "judges, combined any: refusal, marker"
    line = " ".join(rest)  # wrapped at 100 columns
    assert line == (
        "agreement refusal ~ marker: kappa 0.33 [-0.42, 1.00] over 6 answers; 2 disagree: "
        "base/malware-3, tuned/malware-2"
    )
    markdown = delta_markdown(_report(), ORDER, ["tuned"], None, JUDGES, "any")
    assert f"### Judges\n\n- {first}\n- {line}\n" in markdown


def test_one_judge_adds_no_footer() -> None:
    report = RunReport()
    case = holm_family([CaseResult.pair("t", "malware", *[scored_records("malware", [1, 5])] * 2)])
    report.add(CaseRecord.from_case(case[0], gate=True).to_json(), passed=True)
    assert delta_table(report, ORDER, ["t"], None, ["refusal"]) == delta_table(
        report, ORDER, ["t"], None
    )
    assert "Judges" not in delta_markdown(report, ORDER, ["t"], None, ["refusal"])


def test_the_json_report_names_the_judges_and_their_agreement(tmp_path: Path) -> None:
    config = SafetyConfig(judge=("refusal", "openai:j@http://u:PW@127.0.0.1:1/v1"))
    ReportFiles(json=str(tmp_path / "r.json")).write(_report(), config, ORDER, ["tuned"])
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)
    named = ["refusal", "openai:j@http://***@127.0.0.1:1/v1"]
    assert (data["judges"], data["judge_combine"]) == (named, "any")
    assert data["judge"] == ", ".join(named)
    (pair,) = data["judge_agreement"]
    assert {k: pair[k] for k in ("judges", "n", "errors", "agree", "disagree_count")} == {
        "judges": named, "n": 6, "errors": 0, "agree": 4, "disagree_count": 2,
    }  # fmt: skip
    assert pair["disagree"] == ["base/malware-3", "tuned/malware-2"]
    assert pair["kappa"] == pytest.approx(1 / 3)
    verdicts = data["checkpoints"]["tuned"]["categories"]["malware"]["verdicts"]
    assert verdicts["checkpoint"]["malware-2"][3] == {"judges": [[5, "unsafe"], [1, "safe"]]}
