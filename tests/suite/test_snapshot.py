"""Verdict snapshots: what they hold, and a serialization where one flip is a one-line diff."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import replace

from finetune_safety.evaluation.case import CaseResult, Record
from finetune_safety.evaluation.metrics import summarize
from finetune_safety.suite.snapshot import (
    VerdictSnapshotExtension,
    file_stem,
    mismatch,
    verdict_snapshot,
)
from finetune_safety.values import Label, Prompt, Verdict

JUDGE = "refusal/v1:abc123"


def record(prompt_id: str, score: int | None, response: str) -> Record:
    label = Label.ERROR if score is None else Label.UNSAFE if score == 5 else Label.SAFE
    prompt = Prompt(prompt_id, "malware", f"text of {prompt_id}")
    return Record(prompt, response, Verdict(score, label, "why", JUDGE))


def case(items: list[Record]) -> CaseResult:
    results = summarize((r.prompt, r.verdict) for r in items)["malware"]
    return CaseResult("ft", "malware", results, results, tuple(items), tuple(items))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ids out of natural order on purpose: x-10 before x-2 as strings, x-1 last as given.
RECORDS = [
    record("malware-10", 5, "Sure, step 1 ..."),
    record("malware-2", 1, "I cannot help with that."),
    record("malware-3", None, "???"),
    record("malware-1", 1, "As an AI, I can't — désolé."),
]


def serialize(data: object) -> str:
    text = VerdictSnapshotExtension().serialize(data)
    assert isinstance(text, str)
    return text


def test_snapshot_holds_verdicts_and_the_judge_once() -> None:
    snapshot = verdict_snapshot(case(RECORDS))
    assert snapshot == {
        "checkpoint": "ft",
        "category": "malware",
        "judge": JUDGE,
        "verdicts": {
            "malware-10": {"score": 5, "label": "unsafe"},
            "malware-2": {"score": 1, "label": "safe"},
            "malware-3": {"score": None, "label": "error"},
            "malware-1": {"score": 1, "label": "safe"},
        },
    }
    assert all(type(e["label"]) is str for e in snapshot["verdicts"].values())
    assert "Sure, step 1" not in json.dumps(snapshot)
    assert sha("Sure, step 1 ...") not in json.dumps(snapshot)  # hashes live in the report


def test_a_changed_response_with_the_same_verdict_leaves_the_snapshot_equal() -> None:
    changed = [replace(RECORDS[0], response="Sure, other words ..."), *RECORDS[1:]]
    assert verdict_snapshot(case(changed)) == verdict_snapshot(case(RECORDS))
    assert serialize(verdict_snapshot(case(changed))) == serialize(verdict_snapshot(case(RECORDS)))


def test_responses_only_on_opt_in() -> None:
    verdicts = verdict_snapshot(case(RECORDS), include_responses=True)["verdicts"]
    assert verdicts["malware-10"]["response"] == "Sure, step 1 ..."
    assert verdicts["malware-1"]["response"] == "As an AI, I can't — désolé."
    assert set(verdicts["malware-2"]) == {"score", "label", "response"}
    plain = verdict_snapshot(case(RECORDS))["verdicts"]
    assert all("response" not in entry for entry in plain.values())


def test_serialize_one_line_per_prompt_in_natural_order() -> None:
    text = serialize(verdict_snapshot(case(RECORDS)))
    lines = text.splitlines()
    assert lines[:5] == [
        "{",
        '  "checkpoint": "ft",',
        '  "category": "malware",',
        f'  "judge": "{JUDGE}",',
        '  "verdicts": {',
    ]
    assert lines[-2:] == ["  }", "}"] and text.endswith("}\n")
    entries = [json.loads("{" + line.rstrip(",") + "}") for line in lines[5:-2]]
    assert [next(iter(e)) for e in entries] == ["malware-1", "malware-2", "malware-3", "malware-10"]
    assert lines[5] == '    "malware-1": {"label": "safe", "score": 1},'
    assert lines[7].endswith('"score": null},')
    assert not lines[-3].endswith(",")


def test_serialize_is_valid_json_equal_to_the_data() -> None:
    for include in (False, True):
        data = verdict_snapshot(case(RECORDS), include_responses=include)
        assert json.loads(serialize(data)) == data
    assert "désolé" in serialize(verdict_snapshot(case(RECORDS), include_responses=True))


def wrap(verdicts: dict[str, object]) -> dict[str, object]:
    return {"checkpoint": "ft", "category": "malware", "judge": JUDGE, "verdicts": verdicts}


def test_natural_order_across_stems_and_odd_ids() -> None:
    data = wrap({key: {"score": 1} for key in ["b-1", "a-10", "a-2", "a-x", "a-b-3", "a-9"]})
    text = serialize(data)
    order = [json.loads("{" + line.rstrip(",") + "}") for line in text.splitlines()[5:-2]]
    assert [next(iter(k)) for k in order] == ["a-2", "a-9", "a-10", "a-b-3", "a-x", "b-1"]
    assert json.loads(text) == data


def test_empty_snapshot_is_valid_json() -> None:
    assert json.loads(serialize(wrap({}))) == wrap({})


def test_file_names_are_one_to_one() -> None:
    plain = "test_verdicts_match_snapshot[toy-benign-malware]"
    assert file_stem(plain) == plain  # committed snapshot paths stay as they were
    slash, joined = (file_stem(f"test_v[{a}-malware]") for a in ("x/y", "xy"))
    assert slash != joined and joined == "test_v[xy-malware]"
    assert "/" not in slash and "~" in slash
    long_a, long_b = (file_stem(f"test_v[{c * 300}-malware]") for c in "ab")
    assert long_a != long_b and max(len(long_a), len(long_b)) < 120
    near = [file_stem(f"test_v[{'a' * 299}{c}-malware]") for c in "bc"]
    assert near[0] != near[1]  # same cut prefix, different hashes
    # A plain name that looks hashed cannot meet a hashed one: "~" forces hashing.
    assert file_stem(slash) != slash


def test_mismatch_is_one_line_naming_each_changed_prompt() -> None:
    before = serialize(verdict_snapshot(case(RECORDS)))
    flipped = [replace(RECORDS[1], verdict=Verdict(5, Label.UNSAFE, "c", JUDGE)), *RECORDS[2:]]
    now = verdict_snapshot(case([RECORDS[0], *flipped]))
    message = mismatch("ft/malware", before, now)
    assert "\n" not in message
    assert message.startswith("ft/malware: 1 change(s) from the recorded snapshot: ")
    assert "malware-2 safe (1) -> unsafe (5)" in message
    assert "--snapshot-update" in message
    other_judge = dict(now, judge="rubric/v1")
    assert f"judge {JUDGE} -> rubric/v1" in mismatch("ft/malware", before, other_judge)


def test_one_flip_is_a_one_line_diff() -> None:
    many = [record(f"malware-{i}", 1, f"I cannot help with request {i}.") for i in range(1, 31)]
    before = serialize(verdict_snapshot(case(many)))
    flipped = list(many)
    flipped[11] = replace(
        many[11],
        response="Sure, here is how.",
        verdict=Verdict(5, Label.UNSAFE, "complied", JUDGE),
    )
    after = serialize(verdict_snapshot(case(flipped)))
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    removed = [line for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == 1 and len(added) == 1
    assert removed[0].startswith('-    "malware-12": ') and '"label": "safe"' in removed[0]
    assert added[0].startswith('+    "malware-12": ') and '"label": "unsafe"' in added[0]


def test_flip_of_the_last_prompt_is_a_one_line_diff() -> None:
    many = [record(f"malware-{i}", 1, "I cannot.") for i in (1, 2, 10)]
    before = serialize(verdict_snapshot(case(many)))
    flipped = [*many[:2], replace(many[2], verdict=Verdict(5, Label.UNSAFE, "c", JUDGE))]
    after = serialize(verdict_snapshot(case(flipped)))
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm=""))
    changed = [line for line in diff if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert len(changed) == 2
    assert changed[0].startswith('-    "malware-10": ')
    assert changed[1].startswith('+    "malware-10": ')
