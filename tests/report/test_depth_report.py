"""The prefill-depth curve in the run report: a record per depth (``depth`` in its JSON), a row
per depth under the checkpoint's table, ``prefill_depth`` in the JSON report (schema-valid) and a
second panel in the PNG. Without depth records the report is what it was."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from finetune_safety.evaluation.depth import depth_case
from finetune_safety.report.aggregate import RunReport
from finetune_safety.report.record import CaseRecord
from finetune_safety.report.render import delta_markdown, delta_table
from finetune_safety.report.sinks import SCHEMA_FILE, draw_png
from finetune_safety.testing.doubles import (
    case_payload,
    holm_family,
    paired_case,
    scored_records,
)

META = {
    "base": "toy",
    "benchmark": "smoke",
    "judge": "refusal",
    "mode": "delta",
    "alpha": 0.05,
    "created": "2026-01-01T00:00:00+00:00",
    "dtype": "auto",
    "libraries": {},
    "models": {},
    "prefill": {"depths": [5, 10], "source": "toy-harmful-10shot", "judge_reads": "whole"},
}


def depth_payload(depth: int, base: list[int | None], mine: list[int | None]) -> str:
    case = depth_case("ft", depth, scored_records("malware", base), scored_records("malware", mine))
    return CaseRecord.from_case(case, True, None, None, depth).to_json()


@pytest.fixture
def report() -> RunReport:
    run = RunReport()
    (category,) = holm_family([paired_case("ft", "malware", [1, 1, 1, 1], [1, 1, 1, 5])])
    run.add(case_payload(category, True), True)
    run.add(depth_payload(10, [5, 5, 1, 1], [5, 5, 5, 5]), False)
    run.add(depth_payload(5, [5, 1, 1, 1], [5, 5, 1, 1]), True)
    return run


def test_a_depth_record_round_trips_and_a_plain_one_has_no_depth() -> None:
    payload = depth_payload(5, [1, 5], [5, 5])
    assert json.loads(payload)["depth"] == 5
    record = CaseRecord.from_json(payload)
    assert record.depth == 5 and record.category == "prefill-k5"
    assert record.result.n == 2 and record.p_holm == record.p_value
    plain = case_payload(paired_case("ft", "malware", [1], [5]), True)
    assert "depth" not in json.loads(plain) and CaseRecord.from_json(plain).depth is None


def test_the_table_shows_the_curve_under_the_categories(report: RunReport) -> None:
    text = delta_table(report, ["malware"], ["ft"], None)
    lines = text.splitlines()
    assert lines[0] == "ft"
    assert [line.split()[0] for line in lines if line.startswith(("malware", "overall"))] == [
        "malware",
        "overall",
    ]
    curve = lines.index(next(line for line in lines if line.startswith("prefill")))
    k5, k10 = (line.split() for line in lines[curve + 2 : curve + 4])
    # "!": the base prefilled is itself over max_rate (the default 20%)
    assert k5[0] == "k=5" and k5[1] == "4/4" and k5[3] == "25.0!" and k5[4] == "50.0"
    assert k5[-1] == "PASS"
    assert k10[0] == "k=10" and k10[3] == "50.0!" and k10[-1] == "FAIL"
    assert "| k=5 " in delta_markdown(report, ["malware"], ["ft"], None)


def test_the_json_report_holds_the_curve_by_depth(report: RunReport) -> None:
    data = report.to_json(META, ["malware"], ["ft"])
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(data)
    curve = data["checkpoints"]["ft"]["prefill_depth"]
    assert list(curve) == ["5", "10"]
    assert curve["10"]["checkpoint"]["rate"] == 1.0 and curve["10"]["base"]["rate"] == 0.5
    assert curve["10"]["rate_delta"] == 0.5 and curve["10"]["gate"] == "FAIL"
    assert list(data["checkpoints"]["ft"]["categories"]) == ["malware"]


def test_without_depth_records_there_is_no_curve() -> None:
    run = RunReport()
    run.add(case_payload(paired_case("ft", "malware", [1, 1], [1, 5]), True), True)
    data = run.to_json({k: v for k, v in META.items() if k != "prefill"}, ["malware"], ["ft"])
    assert set(data["checkpoints"]["ft"]) == {"categories", "overall"}
    assert "prefill" not in delta_table(run, ["malware"], ["ft"], None)


def test_only_depth_tests_give_only_the_curve() -> None:
    run = RunReport()
    run.add(depth_payload(5, [1, 1], [5, 5]), False)
    text = delta_table(run, [], ["ft"], None)
    assert text.splitlines()[0] == "ft" and text.splitlines()[1].startswith("prefill")
    assert "overall" not in text


def test_the_png_draws_the_curve_beside_the_bars(report: RunReport, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "r.png"
    draw_png(report.to_json(META, ["malware"], ["ft"]), path)
    from matplotlib import image

    height, width = image.imread(path).shape[:2]
    assert width == 1500 and height == 320  # two panels: 15 x 3.2 inches at 100 dpi
