"""Verdict snapshots: what they hold, a serialization where one flip is a one-line diff, reading a
recorded file (one line per fault, formatting never a change), and the snapshot test's body."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.location import PyTestLocation
from syrupy.session import SnapshotSession

from finetune_safety.evaluation.case import CaseResult, Record
from finetune_safety.evaluation.metrics import summarize
from finetune_safety.suite.snapshot import (
    HEADER,
    SnapshotFileError,
    VerdictSnapshotExtension,
    check_snapshot,
    file_stem,
    mismatch,
    read_recorded,
    verdict_snapshot,
    with_unasked,
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
    before = verdict_snapshot(case(RECORDS))
    flipped = [replace(RECORDS[1], verdict=Verdict(5, Label.UNSAFE, "c", JUDGE)), *RECORDS[2:]]
    now = verdict_snapshot(case([RECORDS[0], *flipped]))
    message = mismatch("ft/malware", before, now)
    assert "\n" not in message
    assert message.startswith("ft/malware: 1 change(s) from the recorded snapshot: ")
    assert "malware-2 safe (1) -> unsafe (5)" in message
    assert "--snapshot-update" in message
    other_judge = dict(now, judge="rubric/v1")
    assert f"judge {JUDGE} -> rubric/v1" in mismatch("ft/malware", before, other_judge)
    # A header that differs is a change too: never "0 change(s)".
    moved = mismatch("ft/malware", dict(before, checkpoint="other"), before)
    assert moved.startswith("ft/malware: 1 change(s)") and "checkpoint other -> ft" in moved
    limited = mismatch("ft/malware", before, now, limit=2)
    assert "(partial run, --safety-limit 2: compared on the prompts that ran)" in limited


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


# --- reading a recorded snapshot --------------------------------------------------------------


def recorded_at(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "test_v[ft-malware].json"
    path.write_bytes(content)
    return path


SPOILED = {
    b"{": "not valid JSON (Expecting property name enclosed in double quotes)",
    b"[1]": "not a verdict snapshot: expected a JSON object, found list",
    b'{"\xff": 1}': "not UTF-8 text (byte 0xff at offset 2)",
}


@pytest.mark.parametrize("content", list(SPOILED))
def test_an_unreadable_file_is_named_with_what_is_wrong(tmp_path: Path, content: bytes) -> None:
    path = recorded_at(tmp_path, content)
    with pytest.raises(SnapshotFileError) as caught:
        read_recorded(path)
    assert SPOILED[content] in str(caught.value)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"verdicts": []}, "'verdicts' is not an object"),
        ({"judge": 3}, "'judge' is not a judge id"),
        ({"checkpoint": None}, "'checkpoint' is not a string"),
        ({"notes": "x"}, "unknown key 'notes'"),
        ({"verdicts": {"malware-1": {"label": "safe"}}}, "'malware-1' is not {score, label"),
        ({"verdicts": {"malware-1": {"label": "ok", "score": 1}}}, "has label 'ok'"),
        ({"verdicts": {"malware-1": {"label": "safe", "score": True}}}, "has score True"),
        ({"verdicts": {"malware-1": {"label": "safe", "score": 7}}}, "has score 7"),
        ({"verdicts": {"malware-1": {"label": "safe", "score": 1, "response": 2}}}, "response"),
    ],
)
def test_a_file_of_the_wrong_shape_says_which_part(
    tmp_path: Path, change: dict[str, object], fault: str
) -> None:
    data = {**verdict_snapshot(case(RECORDS)), **change}
    with pytest.raises(SnapshotFileError, match="not a verdict snapshot: ") as caught:
        read_recorded(recorded_at(tmp_path, json.dumps(data).encode()))
    assert fault in str(caught.value)


def test_formatting_is_not_a_change(tmp_path: Path) -> None:
    data = verdict_snapshot(case(RECORDS), include_responses=True)
    text = serialize(data)
    extension = VerdictSnapshotExtension()
    for variant in (
        json.dumps(data, indent=9, sort_keys=True),
        json.dumps(data, ensure_ascii=True),
        text.replace("\n", "\r\n"),
    ):
        assert extension.matches(serialized_data=text, snapshot_data=variant)
        assert read_recorded(recorded_at(tmp_path, variant.encode())) == data
    assert read_recorded(recorded_at(tmp_path, b"\xef\xbb\xbf" + text.encode())) == data
    flipped = text.replace('"label": "unsafe", "response"', '"label": "safe", "response"')
    assert flipped != text
    assert not extension.matches(serialized_data=text, snapshot_data=flipped)
    assert not extension.matches(serialized_data=text, snapshot_data=text[:-3])


def test_bytes_that_are_not_utf8_read_as_a_mismatch_not_an_error(tmp_path: Path) -> None:
    """syrupy reads the file before it compares or rewrites it: a decoding error there would
    stop --snapshot-update from re-recording the file."""
    path = recorded_at(tmp_path, b'{"\xff": 1}')
    read = VerdictSnapshotExtension().read_snapshot_data_from_location(
        snapshot_location=str(path), snapshot_name="x", session_id="s"
    )
    assert read == '{"\ufffd": 1}'


def test_the_prompts_a_limited_run_did_not_ask_stay_as_recorded() -> None:
    stored = verdict_snapshot(case(RECORDS))
    flipped = replace(RECORDS[1], verdict=Verdict(5, Label.UNSAFE, "c", JUDGE))
    asked = verdict_snapshot(case([flipped]))  # malware-2 only, now unsafe
    merged = with_unasked(stored, asked)
    assert merged["verdicts"] == {
        **stored["verdicts"],
        "malware-2": {"score": 5, "label": "unsafe"},
    }
    assert {k: merged[k] for k in HEADER} == {k: asked[k] for k in HEADER}


# --- check_snapshot, the snapshot test's body -------------------------------------------------

Assertion = Callable[..., SnapshotAssertion]
NODE = "safety_tests/test_safety.py::test_verdicts_match_snapshot[ft-malware]"
#: The checkpoint turned malware-2 unsafe; the base refused all four prompts.
BASE = [replace(r, verdict=Verdict(1, Label.SAFE, "refused", JUDGE)) for r in RECORDS]
MINE = [RECORDS[0], replace(RECORDS[1], verdict=Verdict(5, Label.UNSAFE, "c", JUDGE)), *RECORDS[2:]]


@pytest.fixture
def assertion(request: pytest.FixtureRequest, tmp_path: Path) -> Assertion:
    """syrupy's assertion as the gate's snapshot test gets it, writing under ``tmp_path``."""
    folder = tmp_path / "snapshots" / "test_snapshot"

    class InFolder(VerdictSnapshotExtension):
        @classmethod
        def dirname(cls, *, test_location: PyTestLocation) -> str:
            return str(folder)

    session = SnapshotSession(pytest_session=request.session)

    def make(update: bool = False) -> SnapshotAssertion:
        location = PyTestLocation(request.node)
        return SnapshotAssertion(
            update_snapshots=update,
            extension_class=InFolder,
            test_location=location,
            session=session,
        )

    return make


def location(snapshot: SnapshotAssertion) -> Path:
    return Path(snapshot.extension.get_location(test_location=snapshot.test_location, index=0))


def paired() -> CaseResult:
    mine = summarize((r.prompt, r.verdict) for r in MINE)["malware"]
    base = summarize((r.prompt, r.verdict) for r in BASE)["malware"]
    return CaseResult("ft", "malware", base, mine, tuple(BASE), tuple(MINE))


def test_check_snapshot_records_the_checkpoints_verdicts_not_the_bases(
    assertion: Assertion,
) -> None:
    data = verdict_snapshot(paired())
    assert data["verdicts"]["malware-2"] == {"score": 5, "label": "unsafe"}
    check_snapshot(assertion(update=True), data, NODE, strict=False)
    written = json.loads(location(assertion()).read_text(encoding="utf-8"))
    assert written == data
    check_snapshot(assertion(), data, NODE, strict=False)  # passes: nothing raised
    base_side = verdict_snapshot(replace(paired(), records=tuple(BASE)))
    with pytest.raises(pytest.fail.Exception, match="malware-2 unsafe \\(5\\) -> safe \\(1\\)"):
        check_snapshot(assertion(), base_side, NODE, strict=False)


@pytest.mark.parametrize("strict", [False, True])
def test_a_mismatch_fails_strict_or_not(assertion: Assertion, strict: bool) -> None:
    check_snapshot(assertion(update=True), verdict_snapshot(case(RECORDS)), NODE, strict)
    flipped = verdict_snapshot(paired())
    with pytest.raises(pytest.fail.Exception) as caught:
        check_snapshot(assertion(), flipped, NODE, strict)
    assert str(caught.value) == (
        "ft/malware: 1 change(s) from the recorded snapshot: malware-2 safe (1) -> unsafe (5); "
        "if intended, record them with --snapshot-update"
    )


def test_an_unrecorded_case_is_skipped_unless_strict(assertion: Assertion) -> None:
    data = verdict_snapshot(case(RECORDS))
    record = f"record it with: pytest '{NODE}' --snapshot-update"
    with pytest.raises(pytest.skip.Exception, match="no recorded verdict snapshot yet"):
        check_snapshot(assertion(), data, NODE, strict=False)
    with pytest.raises(pytest.fail.Exception, match="\\(strict\\)") as caught:
        check_snapshot(assertion(), data, NODE, strict=True)
    assert str(caught.value).endswith(record)
    assert not location(assertion()).exists()


def test_an_unreadable_snapshot_fails_and_update_rewrites_it(assertion: Assertion) -> None:
    data = verdict_snapshot(case(RECORDS))
    path = location(assertion())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff{")
    with pytest.raises(pytest.fail.Exception) as caught:
        check_snapshot(assertion(), data, NODE, strict=False)
    assert str(caught.value) == (
        f"ft/malware: snapshot {path}: not UTF-8 text (byte 0xff at offset 0); "
        f"re-record it with: pytest '{NODE}' --snapshot-update"
    )
    check_snapshot(assertion(update=True), data, NODE, strict=False)
    assert read_recorded(path) == data


def test_a_limited_run_compares_and_keeps_only_what_it_asked(assertion: Assertion) -> None:
    check_snapshot(assertion(update=True), verdict_snapshot(case(RECORDS)), NODE, strict=False)
    path = location(assertion())
    recorded_text = path.read_bytes()
    first_two = verdict_snapshot(case(RECORDS[:2]))  # the other two were not asked
    check_snapshot(assertion(), first_two, NODE, strict=False, limit=2)
    check_snapshot(assertion(update=True), first_two, NODE, strict=False, limit=2)
    assert path.read_bytes() == recorded_text
    without = dict(first_two, judge="other/v2")  # a judge change cannot be half re-recorded
    with pytest.raises(pytest.fail.Exception, match="the judge changed"):
        check_snapshot(assertion(update=True), without, NODE, strict=False, limit=2)
    assert path.read_bytes() == recorded_text
