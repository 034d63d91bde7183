"""The run report fed with ``user_properties`` entries as test reports carry them: the terminal
table, the JSON report (checked against its schema), Markdown and the significant-mode notes."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from finetune_safety.config import Thresholds
from finetune_safety.evaluation.case import CaseResult, Record, response_sha256
from finetune_safety.evaluation.stats import mcnemar_one_sided, wilson
from finetune_safety.report.aggregate import SCHEMA, RunReport
from finetune_safety.report.record import PROPERTY
from finetune_safety.report.render import delta_markdown, delta_table
from finetune_safety.report.sinks import SCHEMA_FILE
from finetune_safety.suite.limits import regression_failure
from finetune_safety.testing.doubles import case_payload, holm_family, paired_case, scored_records
from finetune_safety.values import CATEGORIES

HEADER = [
    "category",
    "n",
    "score",
    "base",
    "rate [95% CI]",
    "Δ pp",
    "p",
    "gate",
]
ORDER = list(CATEGORIES)
META = {
    "base": "toy",
    "benchmark": "smoke",
    "judge": "refusal",
    "mode": "delta",
    "alpha": 0.05,
    "created": "2026-01-01T00:00:00+00:00",
    "dtype": "auto",
    "libraries": {"torch": "2.0", "openai": None},
    "models": {"base": {"spec": "toy", "fingerprints": ["abc"]}},
}


def records(category: str, scores: list[int | None]) -> tuple[Record, ...]:
    return scored_records(category, scores)


def case(
    alias: str, category: str, base_scores: list[int | None], scores: list[int | None]
) -> CaseResult:
    """A case alone in its family: Holm over one category leaves its p as it is."""
    (alone,) = holm_family([paired_case(alias, category, base_scores, scores)])
    return alone


def parse(text: str) -> dict[str, list[list[str]]]:
    """``{alias: rows}``, each row split into its cells; checks the header and the rule line.
    Note lines after a table are left out (see ``notes_of``)."""
    tables: dict[str, list[list[str]]] = {}
    for block in text.split("\n\n"):
        alias, header, rule, *rows = block.splitlines()
        assert re.split(r"\s{2,}", header.strip()) == HEADER
        assert set(rule) <= {"-", " "}
        notes = [i for i, row in enumerate(rows) if row.startswith(("note:", "power:"))]
        body = rows[: notes[0]] if notes else rows  # notes (maybe wrapped) follow the rows
        tables[alias] = [re.split(r"\s{2,}", row.strip()) for row in body]
    return tables


def unwrap(block: str) -> list[str]:
    """The lines of a table block with wrapped note lines joined again."""
    lines: list[str] = []
    for line in block.splitlines():
        if (
            lines
            and lines[-1].startswith(("note:", "power:"))
            and not line.startswith(("note:", "power:"))
        ):
            lines[-1] += " " + line
        else:
            lines.append(line)
    return lines


def notes_of(text: str) -> dict[str, list[str]]:
    return {
        block.splitlines()[0]: [line for line in unwrap(block) if line.startswith("note:")]
        for block in text.split("\n\n")
    }


# malware: n=4, 1 error, 2/3 unsafe, score 11/3; base 0/4 unsafe, score 1. 2 flips: p = 1/4.
# illegal_activity: n=6, 1/6 unsafe, score 10/6; base 1/6 unsafe. 1 flip each way: p = 3/4.
# Holm over the two: 0.25 * 2 = 0.5, max(0.5, 0.75 * 1) = 0.75.
MALWARE, ILLEGAL = holm_family(
    [
        paired_case("ft", "malware", [1, 1, 1, 1], [5, 5, None, 1]),
        paired_case("ft", "illegal_activity", [5, 1, 1, 1, 1, 1], [1, 1, 5, 1, 1, 1]),
    ]
)
ILLEGAL_ROW = [
    *("illegal_activity", "6/6", "1.67->1.67", "16.7", "16.7 [3-56]", "+0.0"),
    *("0.750", "PASS"),
]
MALWARE_ROW = [
    *("malware", "3/4", "1.00->3.67", "0.0", "66.7 [21-94]", "+66.7"),
    *("0.500", "PASS"),
]


def test_family_helper_matches_the_holm_arithmetic() -> None:
    assert (MALWARE.p_value, MALWARE.p_holm, MALWARE.family) == (0.25, 0.5, 2)
    assert (ILLEGAL.p_value, ILLEGAL.p_holm, ILLEGAL.family) == (0.75, 0.75, 2)


def test_case_payload() -> None:
    value = case_payload(MALWARE, gate=True)
    assert PROPERTY == "finetune_safety"
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
    assert (data["p_value"], data["p_holm"], data["family"]) == (0.25, 0.5, 2)
    assert data["newly_unsafe"] == ["malware-1", "malware-2"]
    assert data["newly_safe"] == []
    assert data["verdicts"]["checkpoint"]["malware-3"] == [None, "error", sha("reply 3")]
    assert data["verdicts"]["base"]["malware-1"] == [1, "safe", sha("reply 1")]
    assert data["verdicts"]["checkpoint"]["malware-1"] == [5, "unsafe", sha("reply 1")]
    assert "records" not in data and "base_records" not in data
    assert "reply" not in value  # response text never travels, only its hash


def sha(text: str) -> str:
    return response_sha256(text)


def test_empty_table_is_falsy() -> None:
    table = RunReport()
    assert not table
    table.add(None, passed=True)
    table.add(42, passed=True)
    assert not table


def render(report: RunReport, order: list[str] = ORDER) -> str:
    """The table as the plugin prints it in delta mode (no notes)."""
    return delta_table(report, order, [], None)


def test_rows_overall_pooled_and_gates() -> None:
    table = RunReport()
    table.add(case_payload(MALWARE, gate=True), passed=True)
    table.add(case_payload(ILLEGAL, gate=True), passed=False)
    assert table
    assert parse(render(table)) == {
        "ft": [
            [*ILLEGAL_ROW[:-1], "FAIL"],
            MALWARE_ROW,
            # pooled over prompts: 3 unsafe / 9 judged; score (11 + 10) / 9; base 1/10, 14/10.
            # overall p is McNemar over the pooled flips, 3 worse and 1 better: 5/16 = 0.3125
            # (not Holm-adjusted: it is one test).
            # No overall test ran: the row is pooled here and gates nothing.
            [*("overall", "9/10", "1.40->2.33", "10.0", "33.3 [12-65]", "+23.3", "0.312", "-")],
        ]
    }


def test_interval_column_is_the_wilson_interval_in_whole_percent() -> None:
    table = RunReport()
    table.add(case_payload(MALWARE, gate=True), passed=True)
    low, high = wilson(2, 3)
    cell = parse(render(table))["ft"][0][4]
    assert cell == f"66.7 [{100 * low:.0f}-{100 * high:.0f}]" == "66.7 [21-94]"


def test_p_column_formats() -> None:
    table = RunReport()
    tiny = case("ft", "malware", [1] * 12, [5] * 12)  # p = 2**-12
    table.add(case_payload(tiny, gate=True), passed=False)
    same = records("illegal_activity", [1])
    unadjusted = CaseResult.pair("ft", "illegal_activity", same, same)
    assert unadjusted.p_holm is None
    table.add(case_payload(unadjusted, gate=True), passed=True)
    rows = parse(render(table))["ft"]
    assert [(r[0], r[6]) for r in rows] == [
        ("illegal_activity", "-"),
        ("malware", "<0.001"),
        ("overall", "<0.001"),
    ]


def test_categories_follow_the_given_order_and_only_those_added() -> None:
    table = RunReport()
    table.add(case_payload(ILLEGAL, gate=True), passed=True)
    table.add(case_payload(MALWARE, gate=True), passed=True)
    table.add(case_payload(case("ft", "advbench", [1], [1]), gate=True), passed=True)
    order = ["malware", *CATEGORIES]
    rows = parse(render(table, order))["ft"]
    assert [row[0] for row in rows] == ["malware", "illegal_activity", "advbench", "overall"]
    assert [row[-1] for row in rows] == ["PASS", "PASS", "PASS", "-"]


def test_one_block_per_alias_sorted() -> None:
    table = RunReport()
    for alias in ("zeta", "alpha", "mid"):
        table.add(case_payload(case(alias, "malware", [1, 1], [5, 1]), gate=True), True)
    text = render(table)
    assert [block.splitlines()[0] for block in text.split("\n\n")] == ["alpha", "mid", "zeta"]
    tables = parse(text)
    row = ["2/2", "1.00->3.00", "0.0", "50.0 [9-91]", "+50.0", "0.500"]
    for rows in tables.values():
        assert rows == [["malware", *row, "PASS"], ["overall", *row, "-"]]


def test_blocks_follow_the_configured_alias_order_then_the_rest_sorted() -> None:
    table = RunReport()
    for alias in ("zeta", "alpha", "mid", "beta"):
        table.add(case_payload(case(alias, "malware", [1, 1], [5, 1]), gate=True), True)
    text = delta_table(table, ORDER, ["mid", "unused", "zeta"], None)
    assert [block.splitlines()[0] for block in text.split("\n\n")] == [
        "mid",
        "zeta",
        "alpha",
        "beta",
    ]


def test_gate_column_dash_without_gate_tests() -> None:
    table = RunReport()
    # a failing snapshot test carries the numbers but is not a gate
    table.add(case_payload(MALWARE, gate=False), passed=False)
    rows = parse(render(table))["ft"]
    assert [row[-1] for row in rows] == ["-", "-"]


def test_gate_fails_when_any_gate_test_of_the_case_fails() -> None:
    table = RunReport()
    table.add(case_payload(MALWARE, gate=True), passed=True)  # rate gate
    table.add(case_payload(MALWARE, gate=True), passed=False)  # regression gate
    table.add(case_payload(MALWARE, gate=False), passed=True)  # snapshot
    table.add(case_payload(ILLEGAL, gate=False), passed=True)
    rows = parse(render(table))["ft"]
    assert [(row[0], row[-1]) for row in rows] == [
        ("illegal_activity", "-"),
        ("malware", "FAIL"),
        ("overall", "-"),  # only the overall test gates the pooled row
    ]


def test_duplicate_add_does_not_double_count() -> None:
    once, twice = RunReport(), RunReport()
    once.add(case_payload(MALWARE, gate=True), passed=True)
    once.add(case_payload(ILLEGAL, gate=True), passed=True)
    for _ in range(2):
        twice.add(case_payload(MALWARE, gate=True), passed=True)
        twice.add(case_payload(ILLEGAL, gate=True), passed=True)
    assert render(twice) == render(once)
    assert parse(render(twice))["ft"][-1][:2] == ["overall", "9/10"]
    assert twice.to_json(META, ORDER, []) == once.to_json(META, ORDER, [])


def test_arrival_order_does_not_matter() -> None:
    """Under xdist reports arrive in any order; every output must be the same."""
    forward, backward = RunReport(), RunReport()
    items = [
        (case_payload(MALWARE, gate=True), True),
        (case_payload(ILLEGAL, gate=True), False),
        (case_payload(case("other", "malware", [1], [5]), gate=True), False),
        (case_payload(MALWARE, gate=False), True),
    ]
    for prop, passed in items:
        forward.add(prop, passed)
    for prop, passed in reversed(items):
        backward.add(prop, passed)
    assert render(forward) == render(backward)
    assert delta_markdown(forward, ORDER, ["ft"], 0.05) == delta_markdown(
        backward, ORDER, ["ft"], 0.05
    )
    forward_json = json.dumps(forward.to_json(META, ORDER, []))
    assert forward_json == json.dumps(backward.to_json(META, ORDER, []))


def test_other_properties_are_ignored() -> None:
    with_noise, plain = RunReport(), RunReport()
    for noise in (None, 0.5, [("harmfulness_rate", 0.5)]):
        with_noise.add(noise, passed=False)
    with_noise.add(case_payload(MALWARE, gate=True), passed=True)
    plain.add(case_payload(MALWARE, gate=True), passed=True)
    assert render(with_noise) == render(plain)


def test_all_error_category_has_no_score_or_rate() -> None:
    table = RunReport()
    table.add(case_payload(case("ft", "malware", [1, 5], [None, None]), gate=True), True)
    rows = parse(render(table))["ft"]
    assert rows[0][:3] == ["malware", "0/2", "3.00->-"]
    assert rows[0][3] == "50.0!"  # the base is over the default max_rate (20%)
    assert rows[0][6] == "1.000"  # no prompt judged on both sides: no discordant pair
    assert rows[1][:2] == ["overall", "0/2"]


def test_missing_rate_renders_as_dash() -> None:
    table = RunReport()
    table.add(case_payload(case("ft", "malware", [1, 5], [None, None]), gate=True), True)
    row = parse(render(table))["ft"][0]
    assert row[4] == "-"  # and no interval
    assert row[5] == "-"


# --- notes (significant mode) -----------------------------------------------------------------


def small_family() -> RunReport:
    """Three prompts in each of two categories: at most 3 flips, p >= 1/8 > 0.05 / 2."""
    report = RunReport()
    pair = [
        paired_case("ft", "illegal_activity", [1, 1, 1], [5, 5, 5]),
        paired_case("ft", "malware", [1] * 8, [5] * 8),
    ]
    for c in holm_family(pair):
        report.add(case_payload(c, gate=True), passed=True)
    return report


def test_notes_only_in_significant_mode() -> None:
    report = small_family()
    assert delta_table(report, ORDER, [], None) == render(report)
    assert notes_of(render(report)) == {"ft": []}
    assert notes_of(delta_table(report, ORDER, [], 0.05)) == {
        "ft": [
            "note: no number of flips reaches p < 0.05 in illegal_activity (n=3), not even at "
            "Holm's last step: a significant-mode gate cannot fail there"
        ]
    }
    # the rows are the same with or without the note
    assert parse(delta_table(report, ORDER, [], 0.05)) == parse(render(report))


def test_notes_name_every_category_too_small_for_alpha() -> None:
    report = small_family()
    # at alpha 0.001 even Holm's last step needs 10 flips; neither 3 nor 8 prompts can
    assert notes_of(delta_table(report, ORDER, [], 0.001))["ft"] == [
        "note: no number of flips reaches p < 0.001 in illegal_activity (n=3), malware (n=8), "
        "not even at Holm's last step: a significant-mode gate cannot fail there"
    ]
    # at alpha 0.3, 0.15 per test: 3 flips (0.125) suffice
    assert notes_of(delta_table(report, ORDER, [], 0.3))["ft"] == []


def test_notes_count_judged_prompts_only() -> None:
    report = RunReport()
    # 6 prompts, but 2 errors: 4 judged, and 0.5**4 = 0.0625 >= 0.05
    report.add(case_payload(case("ft", "malware", [1] * 6, [5, 5, 5, 5, None, None]), True), True)
    assert notes_of(delta_table(report, ORDER, [], 0.05))["ft"] == [
        "note: no number of flips reaches p < 0.05 in malware (n=4), not even at Holm's last "
        "step: a significant-mode gate cannot fail there"
    ]


def _significant_family(
    sizes: dict[str, int], limits: Thresholds
) -> tuple[RunReport, dict[str, bool]]:
    """One checkpoint whose every prompt flipped safe -> unsafe, in categories of the given
    sizes; each category's significant-mode regression gate decided as the suite decides it."""
    family = holm_family(
        [paired_case("ft", category, [1] * n, [5] * n) for category, n in sizes.items()]
    )
    report, passed = RunReport(), {}
    for c in family:
        passed[c.category] = regression_failure(c, limits) is None
        report.add(case_payload(c, gate=True, limits=limits), passed[c.category])
    return report, passed


def test_a_category_the_notes_call_unfailable_never_fails_whatever_the_others_do() -> None:
    """Unequal sizes: Holm's last step compares with alpha itself, so 5 prompts (p = 1/32) fail
    once the two larger categories are significant, though 1/32 > 0.05/3. 4 prompts (1/16)
    never can."""
    limits = Thresholds(mode="significant", alpha=0.05, max_rate_delta=0.0)
    sizes = {"illegal_activity": 10, "malware": 10, "physical_harm": 5}
    report, passed = _significant_family(sizes, limits)
    assert passed == {"illegal_activity": False, "malware": False, "physical_harm": False}
    table = delta_table(report, ORDER, [], 0.05)
    rows = {row[0]: row for row in parse(table)["ft"]}
    assert rows["physical_harm"][-1] == "FAIL"
    assert notes_of(table)["ft"] == [
        "note: after Holm over 3 categories, these reach p < 0.05 only when that many other "
        "categories do too: physical_harm (n=5, 2 others)"
    ]
    # Beside larger categories that did not regress, the same 5 flips pass: p = 3 * 1/32.
    alone = holm_family(
        [
            paired_case("ft", "illegal_activity", [1] * 10, [1] * 10),
            paired_case("ft", "malware", [1] * 10, [1] * 10),
            paired_case("ft", "physical_harm", [1] * 5, [5] * 5),
        ]
    )
    assert [regression_failure(c, limits) for c in alone] == [None, None, None]

    sizes = {"illegal_activity": 10, "malware": 10, "physical_harm": 4}
    report, passed = _significant_family(sizes, limits)
    assert passed["physical_harm"]
    notes = notes_of(delta_table(report, ORDER, [], 0.05))["ft"]
    assert notes == [
        "note: no number of flips reaches p < 0.05 in physical_harm (n=4), not even at Holm's "
        "last step: a significant-mode gate cannot fail there"
    ]


def test_the_power_note_counts_flips_with_none_back() -> None:
    """5 flips of 9 reach p = 1/32 < 0.05 with no reverse flip; one reverse flip takes 7."""
    report = RunReport()
    report.add(case_payload(case("ft", "malware", [1] * 9, [5] * 9), gate=True), passed=True)
    block = unwrap(delta_table(report, ORDER, [], 0.05))
    assert (
        "power: the pooled test needs 5 safe->unsafe flips of 9 prompts, none unsafe->safe, "
        "for p < 0.05" in block
    )
    assert mcnemar_one_sided(5, 0) < 0.05 <= mcnemar_one_sided(4, 0)
    assert mcnemar_one_sided(6, 1) >= 0.05 > mcnemar_one_sided(7, 1)


def test_notes_per_checkpoint_block() -> None:
    report = small_family()
    report.add(case_payload(case("big", "malware", [1] * 30, [1] * 30), True), True)
    notes = notes_of(delta_table(report, ORDER, ["ft", "big"], 0.05))
    assert notes["big"] == []
    assert len(notes["ft"]) == 1


# --- JSON report -------------------------------------------------------------------------------


def validate(data: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)


def two_checkpoints() -> RunReport:
    report = RunReport()
    report.add(case_payload(MALWARE, gate=True), passed=True)
    report.add(case_payload(ILLEGAL, gate=True), passed=False)
    report.add(case_payload(ILLEGAL, gate=False), passed=True)
    report.add(case_payload(case("nogate", "malware", [1, 1], [1, 5]), gate=False), False)
    return report


def test_json_is_valid_against_the_schema() -> None:
    data = two_checkpoints().to_json(META, ORDER, ["ft", "nogate"])
    validate(data)
    # and survives a round trip through text (as --safety-report-json writes it)
    validate(json.loads(json.dumps(data)))
    assert data["schema"] == SCHEMA == "finetune-safety-report/1"
    assert {k: data[k] for k in META} == META
    assert list(data["checkpoints"]) == ["ft", "nogate"]
    assert list(data["checkpoints"]["ft"]["categories"]) == ["illegal_activity", "malware"]


def test_json_numbers_flips_verdicts_and_gates_per_case() -> None:
    data = two_checkpoints().to_json(META, ORDER, ["ft"])
    ft = data["checkpoints"]["ft"]["categories"]
    malware, illegal = ft["malware"], ft["illegal_activity"]
    assert malware["base"] == {
        "category": "malware",
        "n": 4,
        "n_unsafe": 0,
        "n_error": 0,
        "score": 1.0,
        "rate": 0.0,
        "rate_ci95": list(wilson(0, 4)),
    }
    assert malware["checkpoint"] == {
        "category": "malware",
        "n": 4,
        "n_unsafe": 2,
        "n_error": 1,
        "score": pytest.approx(11 / 3),
        "rate": pytest.approx(2 / 3),
        "rate_ci95": pytest.approx([0.20765960080204782, 0.9385080552796038], abs=1e-9),
    }
    assert malware["rate_delta"] == pytest.approx(2 / 3)
    assert malware["score_delta"] == pytest.approx(8 / 3)
    assert (malware["p_value"], malware["p_holm"], malware["gate"]) == (0.25, 0.5, "PASS")
    assert malware["flips"] == {"safe_to_unsafe": ["malware-1", "malware-2"], "unsafe_to_safe": []}
    assert illegal["flips"] == {
        "safe_to_unsafe": ["illegal_activity-3"],
        "unsafe_to_safe": ["illegal_activity-1"],
    }
    assert (illegal["p_value"], illegal["p_holm"], illegal["gate"]) == (0.75, 0.75, "FAIL")
    assert illegal["rate_delta"] == 0.0
    assert illegal["score_delta"] == 0.0
    assert malware["verdicts"] == {
        "base": {f"malware-{i}": [1, "safe", sha(f"reply {i}")] for i in range(1, 5)},
        "checkpoint": {
            "malware-1": [5, "unsafe", sha("reply 1")],
            "malware-2": [5, "unsafe", sha("reply 2")],
            "malware-3": [None, "error", sha("reply 3")],
            "malware-4": [1, "safe", sha("reply 4")],
        },
    }
    nogate = data["checkpoints"]["nogate"]
    assert nogate["categories"]["malware"]["gate"] == "-"
    assert nogate["overall"]["gate"] == "-"


def test_json_overall_is_pooled() -> None:
    overall = two_checkpoints().to_json(META, ORDER, ["ft"])["checkpoints"]["ft"]["overall"]
    assert overall["base"]["n"] == 10 and overall["base"]["n_unsafe"] == 1
    assert overall["checkpoint"]["n_unsafe"] == 3 and overall["checkpoint"]["n_error"] == 1
    assert overall["checkpoint"]["rate"] == pytest.approx(3 / 9)
    assert overall["checkpoint"]["rate_ci95"] == pytest.approx(list(wilson(3, 9)))
    assert overall["rate_delta"] == pytest.approx(3 / 9 - 1 / 10)
    assert overall["p_value"] == 5 / 16
    assert overall["gate"] == "-"  # no overall test ran
    assert overall["power"] == 5  # 0.5**5 < 0.05 with 9 judged
    assert set(overall) == {"base", "checkpoint", "rate_delta", "p_value", "gate", "power"}


def test_json_all_error_case_is_still_valid() -> None:
    report = RunReport()
    report.add(case_payload(case("ft", "malware", [1, 5], [None, None]), gate=True), True)
    data = report.to_json(META | {"mode": "significant", "base": None}, ORDER, [])
    validate(data)
    malware = data["checkpoints"]["ft"]["categories"]["malware"]
    assert malware["checkpoint"]["rate"] is None
    assert malware["checkpoint"]["score"] is None
    assert malware["checkpoint"]["rate_ci95"] == [0.0, 1.0]
    assert malware["rate_delta"] is None and malware["score_delta"] is None
    assert malware["p_value"] == 1.0


def test_schema_rejects_what_it_should() -> None:
    good = two_checkpoints().to_json(META, ORDER, ["ft"])
    broken = json.loads(json.dumps(good))
    broken["checkpoints"]["ft"]["categories"]["malware"]["gate"] = "MAYBE"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = json.loads(json.dumps(good))
    broken["checkpoints"]["ft"]["categories"]["malware"]["verdicts"]["base"]["malware-1"][2] = "x"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate(good | {"responses": []})


# --- Markdown ----------------------------------------------------------------------------------


def test_markdown_tables_and_flips() -> None:
    text = delta_markdown(two_checkpoints(), ORDER, ["ft", "nogate"], None)
    assert text.startswith("## finetune-safety: checkpoint vs base\n")
    assert "### ft\n" in text and "### nogate\n" in text
    assert text.index("### ft") < text.index("### nogate")
    ft = text[text.index("### ft") : text.index("### nogate")]
    lines = [line for line in ft.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0] == HEADER
    assert set(lines[1]) <= {"|", "-", ":", " "}
    assert cells[2:] == [
        [*ILLEGAL_ROW[:-1], "FAIL"],
        MALWARE_ROW,
        ["overall", "9/10", "1.40->2.33", "10.0", "33.3 [12-65]", "+23.3", "0.312", "-"],
    ]
    assert (
        "Safe for the base, unsafe for the checkpoint:\n\n"
        "- **illegal_activity** (1): illegal_activity-3\n"
        "- **malware** (2): malware-1, malware-2\n"
    ) in ft
    nogate = text[text.index("### nogate") :]
    assert "- **malware** (1): malware-2\n" in nogate
    assert "note:" not in text


def test_markdown_without_flips_has_no_flip_list() -> None:
    report = RunReport()
    report.add(case_payload(case("ft", "malware", [5, 1], [1, 1]), gate=True), True)
    text = delta_markdown(report, ORDER, [], None)
    assert "Safe for the base, unsafe for the checkpoint" not in text
    assert "| malware " in text


def test_markdown_carries_the_notes_as_quotes() -> None:
    text = delta_markdown(small_family(), ORDER, [], 0.05)
    assert (
        "> note: no number of flips reaches p < 0.05 in illegal_activity (n=3), not even at "
        "Holm's last step: a significant-mode gate cannot fail there\n"
    ) in text
    assert "> note" not in delta_markdown(small_family(), ORDER, [], None)
