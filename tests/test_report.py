"""The end-of-run delta table, fed with ``user_properties`` entries as test reports carry them."""

from __future__ import annotations

import json
import re

from finetune_safety.evaluate import Record
from finetune_safety.report import PROPERTY, DeltaTable, case_property
from finetune_safety.suite import CaseResult
from finetune_safety.values import CATEGORIES, Label, Prompt, Verdict

HEADER = [
    "category",
    "n",
    "base score",
    "score",
    "Δ score",
    "base rate",
    "rate",
    "Δ rate",
    "gate",
]


def records(category: str, scores: list[int | None]) -> tuple[Record, ...]:
    out = []
    for i, score in enumerate(scores, 1):
        label = Label.ERROR if score is None else Label.UNSAFE if score == 5 else Label.SAFE
        prompt = Prompt(f"{category}-{i}", category, "text")
        out.append(Record(prompt, f"reply {i}", Verdict(score, label, "r", "refusal/v1")))
    return tuple(out)


def case(
    alias: str, category: str, base_scores: list[int | None], scores: list[int | None]
) -> CaseResult:
    base_records, result_records = records(category, base_scores), records(category, scores)
    return CaseResult.pair(alias, category, base_records, result_records)


def parse(text: str) -> dict[str, list[list[str]]]:
    """``{alias: rows}``, each row split into its cells; checks the header and the rule line."""
    tables: dict[str, list[list[str]]] = {}
    for block in text.split("\n\n"):
        alias, header, rule, *rows = block.splitlines()
        assert re.split(r"\s{2,}", header.strip()) == HEADER
        assert set(rule) <= {"-", " "}
        tables[alias] = [re.split(r"\s{2,}", row.strip()) for row in rows]
    return tables


# malware: n=4, 1 error, 2/3 unsafe, score 11/3; base 0/4 unsafe, score 1.
MALWARE = case("ft", "malware", [1, 1, 1, 1], [5, 5, None, 1])
# illegal_activity: n=6, 1/6 unsafe, score 10/6; base 1/6 unsafe, score 10/6.
ILLEGAL = case("ft", "illegal_activity", [5, 1, 1, 1, 1, 1], [1, 1, 5, 1, 1, 1])


def test_case_property_payload() -> None:
    name, value = case_property(MALWARE, gate=True)
    assert name == PROPERTY == "finetune_safety"
    data = json.loads(value)
    assert data["alias"] == "ft"
    assert data["category"] == "malware"
    assert data["gate"] is True
    assert data["result"] == {
        "category": "malware",
        "n": 4,
        "n_unsafe": 2,
        "n_error": 1,
        "score": 11 / 3,
        "rate": 2 / 3,
    }
    assert data["base"]["n_unsafe"] == 0
    assert "records" not in data and "base_records" not in data


def test_empty_table_is_falsy() -> None:
    table = DeltaTable()
    assert not table
    table.add([("other", "x"), (PROPERTY, 42)], passed=True)
    assert not table


def test_rows_overall_pooled_and_gates() -> None:
    table = DeltaTable()
    table.add([case_property(MALWARE, gate=True)], passed=True)
    table.add([case_property(ILLEGAL, gate=True)], passed=False)
    assert table
    assert parse(table.render(list(CATEGORIES))) == {
        "ft": [
            ["illegal_activity", "6", "1.67", "1.67", "+0.00", "16.7%", "16.7%", "+0.0 pp", "FAIL"],
            ["malware", "4 (1 err)", "1.00", "3.67", "+2.67", "0.0%", "66.7%", "+66.7 pp", "PASS"],
            # pooled over prompts: 3 unsafe / 9 judged; score (11 + 10) / 9; base 1/10, 14/10
            [
                "overall",
                "10 (1 err)",
                "1.40",
                "2.33",
                "+0.93",
                "10.0%",
                "33.3%",
                "+23.3 pp",
                "FAIL",
            ],
        ]
    }


def test_categories_follow_the_given_order_and_only_those_added() -> None:
    table = DeltaTable()
    table.add([case_property(ILLEGAL, gate=True)], passed=True)
    table.add([case_property(MALWARE, gate=True)], passed=True)
    table.add([case_property(case("ft", "advbench", [1], [1]), gate=True)], passed=True)
    order = ["malware", *CATEGORIES]
    rows = parse(table.render(order))["ft"]
    assert [row[0] for row in rows] == ["malware", "illegal_activity", "advbench", "overall"]
    assert [row[-1] for row in rows] == ["PASS"] * 4


def test_one_block_per_alias_sorted() -> None:
    table = DeltaTable()
    for alias in ("zeta", "alpha", "mid"):
        table.add([case_property(case(alias, "malware", [1, 1], [5, 1]), gate=True)], True)
    text = table.render(list(CATEGORIES))
    assert [block.splitlines()[0] for block in text.split("\n\n")] == ["alpha", "mid", "zeta"]
    tables = parse(text)
    for rows in tables.values():
        assert rows == [
            ["malware", "2", "1.00", "3.00", "+2.00", "0.0%", "50.0%", "+50.0 pp", "PASS"],
            ["overall", "2", "1.00", "3.00", "+2.00", "0.0%", "50.0%", "+50.0 pp", "PASS"],
        ]


def test_gate_column_dash_without_gate_tests() -> None:
    table = DeltaTable()
    # a failing snapshot test carries the numbers but is not a gate
    table.add([case_property(MALWARE, gate=False)], passed=False)
    rows = parse(table.render(list(CATEGORIES)))["ft"]
    assert [row[-1] for row in rows] == ["-", "-"]


def test_gate_fails_when_any_gate_test_of_the_case_fails() -> None:
    table = DeltaTable()
    table.add([case_property(MALWARE, gate=True)], passed=True)  # rate gate
    table.add([case_property(MALWARE, gate=True)], passed=False)  # regression gate
    table.add([case_property(MALWARE, gate=False)], passed=True)  # snapshot
    table.add([case_property(ILLEGAL, gate=False)], passed=True)
    rows = parse(table.render(list(CATEGORIES)))["ft"]
    assert [(row[0], row[-1]) for row in rows] == [
        ("illegal_activity", "-"),
        ("malware", "FAIL"),
        ("overall", "FAIL"),
    ]


def test_duplicate_add_does_not_double_count() -> None:
    once, twice = DeltaTable(), DeltaTable()
    once.add([case_property(MALWARE, gate=True)], passed=True)
    once.add([case_property(ILLEGAL, gate=True)], passed=True)
    for _ in range(2):
        twice.add([case_property(MALWARE, gate=True)], passed=True)
        twice.add([case_property(ILLEGAL, gate=True)], passed=True)
    order = list(CATEGORIES)
    assert twice.render(order) == once.render(order)
    assert parse(twice.render(order))["ft"][-1][:2] == ["overall", "10 (1 err)"]


def test_other_properties_are_ignored() -> None:
    with_noise, plain = DeltaTable(), DeltaTable()
    with_noise.add(
        [("duration", "1.5"), case_property(MALWARE, gate=True), ("finetune_safety_x", "{}")],
        passed=True,
    )
    plain.add([case_property(MALWARE, gate=True)], passed=True)
    order = list(CATEGORIES)
    assert with_noise.render(order) == plain.render(order)


def test_all_error_category_has_no_score_or_rate() -> None:
    table = DeltaTable()
    table.add([case_property(case("ft", "malware", [1, 5], [None, None]), gate=True)], True)
    rows = parse(table.render(list(CATEGORIES)))["ft"]
    assert rows[0][:5] == ["malware", "2 (2 err)", "3.00", "-", "-"]
    assert rows[0][5] == "50.0%"
    assert rows[1][:2] == ["overall", "2 (2 err)"]


def test_missing_rate_renders_as_dash() -> None:
    table = DeltaTable()
    table.add([case_property(case("ft", "malware", [1, 5], [None, None]), gate=True)], True)
    row = parse(table.render(list(CATEGORIES)))["ft"][0]
    assert row[6] == "-"
    assert row[7] == "-"
