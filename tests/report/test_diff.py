"""``finetune-safety diff A B`` on two snapshot directories and on two saved run reports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from finetune_safety.cli import main
from finetune_safety.evaluation.case import CaseResult
from finetune_safety.report.aggregate import RunReport
from finetune_safety.suite.snapshot import VerdictSnapshotExtension, verdict_snapshot
from finetune_safety.testing.doubles import case_payload, paired_case
from finetune_safety.values import CATEGORIES

#: ``{"<alias>-<category>": {prompt number: judge score or None}}``; 5 = unsafe, None = error.
Run = dict[str, dict[int, int | None]]

BEFORE: Run = {
    "ckpt-malware": {1: 1, 2: 1, 3: 5},
    "ckpt-illegal_activity": {1: 1, 2: 1},
}


def split(case_id: str) -> tuple[str, str]:
    category = next(c for c in CATEGORIES if case_id.endswith(f"-{c}"))
    return case_id[: -len(category) - 1], category


def case(case_id: str, scores: dict[int, int | None]) -> CaseResult:
    alias, category = split(case_id)
    return paired_case(alias, category, dict.fromkeys(scores, 1), scores, "reply {score}")


def snapshots(directory: Path, run: Run) -> Path:
    """Verdict snapshot files as the suite writes them (``__snapshots__/test_safety``)."""
    directory.mkdir(parents=True)
    extension = VerdictSnapshotExtension()
    for case_id, scores in run.items():
        text = extension.serialize(verdict_snapshot(case(case_id, scores)))
        name = f"test_verdicts_match_snapshot[{case_id}].json"
        (directory / name).write_text(text, encoding="utf-8")
    return directory


#: The judge id ``scored_records`` gives every verdict, so snapshots name it.
JUDGE_ID = "refusal/v1"
#: What a report written now records of how the run was made (an older one only the spec).
MADE = {
    "judge": "refusal",
    "judge_id": JUDGE_ID,
    "benchmark": "smoke",
    "dtype": "auto",
    "decoding": {"max_new_tokens": 512, "max_prompt_tokens": None},
}


def saved_run(path: Path, run: Run, **made: object) -> Path:
    """A ``--safety-report-json`` file of the run, made as ``MADE`` says unless ``made``
    says otherwise (a value of None leaves the key out, as an older report does)."""
    report = RunReport()
    for case_id, scores in run.items():
        c = replace(case(case_id, scores), p_holm=1.0)
        report.add(case_payload(c, gate=True), passed=True)
    meta = {"base": "toy", "mode": "delta", "alpha": 0.05, **MADE, **made}
    meta = {k: v for k, v in meta.items() if v is not None}
    path.write_text(json.dumps(report.to_json(meta, list(CATEGORIES), [])), encoding="utf-8")
    return path


def changed(run: Run, case_id: str, number: int, score: int | None) -> Run:
    out = {k: dict(v) for k, v in run.items()}
    out[case_id][number] = score
    return out


def diff(
    a: Path, b: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, list[str], str]:
    code = main(["diff", str(a), str(b), *options])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


@pytest.fixture(params=["snapshots", "report"])
def saved(request: pytest.FixtureRequest) -> Callable[[Path, Run], Path]:
    """How a run was kept: as verdict snapshot files or as a ``--safety-report-json`` file;
    ``diff`` tells flips alike from either."""
    return snapshots if request.param == "snapshots" else saved_run


# --- either kind of input ----------------------------------------------------------------------


#: What ``diff`` says: exit code, ckpt/malware's line, how many prompts turned unsafe and safe.
Outcome = tuple[int, str, int, int]
#: ``{case: (change to ckpt-malware's (prompt, score) or None, diffing A to B, B to A)}``
FLIPS: dict[str, tuple[tuple[int, int] | None, Outcome, Outcome]] = {
    "identical": (None, (0, "no flips", 0, 0), (0, "no flips", 0, 0)),
    "one-new-unsafe": (
        (2, 5),
        (1, "safe -> unsafe: malware-2", 1, 0),
        (0, "unsafe -> safe: malware-2", 0, 1),
    ),
    "only-a-safe-flip": (
        (3, 1),
        (0, "unsafe -> safe: malware-3", 0, 1),
        (1, "safe -> unsafe: malware-3", 1, 0),
    ),
}


def said(outcome: Outcome) -> tuple[int, list[str], str]:
    """What ``diff`` returns for ``outcome``: its code, the lines it prints, nothing on stderr."""
    code, malware, unsafe, safe = outcome
    lines = [
        "ckpt/illegal_activity: no flips",
        f"ckpt/malware: {malware}",
        f"{unsafe} prompt(s) turned unsafe, {safe} turned safe",
    ]
    return code, lines, ""


@pytest.mark.parametrize("case", list(FLIPS))
def test_flips_and_the_exit_code(
    saved: Callable[[Path, Run], Path],
    case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 1 exactly when a prompt turned unsafe; the other way round, a safe flip is one."""
    change, forward, backward = FLIPS[case]
    after = BEFORE if change is None else changed(BEFORE, "ckpt-malware", *change)
    a = saved(tmp_path / "a", BEFORE)
    b = saved(tmp_path / "b", after)
    assert diff(a, b, capsys) == said(forward)
    assert diff(b, a, capsys) == said(backward)


def test_cases_and_prompts_on_one_side_only_are_listed(
    saved: Callable[[Path, Run], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = BEFORE | {"old-malware": {1: 1}}
    after = {k: dict(v) for k, v in BEFORE.items()} | {"toy-new-physical_harm": {1: 5}}
    after["ckpt-malware"][4] = 5  # a prompt added to the benchmark
    del after["ckpt-illegal_activity"][2]  # a prompt removed
    a = saved(tmp_path / "a", before)
    b = saved(tmp_path / "b", after)
    code, out, _ = diff(a, b, capsys)
    assert out == [
        "prompts differ in 2 case(s), compared on the prompts both asked: "
        "ckpt/illegal_activity (A 2, B 1, both 1), ckpt/malware (A 3, B 4, both 3)",
        "ckpt/illegal_activity: removed: illegal_activity-2",
        "ckpt/malware: added: malware-4",
        "old/malware: only in A",
        "toy-new/physical_harm: only in B",
        "0 prompt(s) turned unsafe, 0 turned safe",
    ]
    # new prompts and new cases are not flips: nothing turned unsafe that was safe before
    assert code == 0


# --- snapshot directories ----------------------------------------------------------------------


def test_snapshot_dirs_found_below_the_given_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = snapshots(tmp_path / "a" / "__snapshots__" / "test_safety", BEFORE)
    b = snapshots(
        tmp_path / "b" / "__snapshots__" / "test_safety", changed(BEFORE, "ckpt-malware", 1, 5)
    )
    (tmp_path / "a" / "__snapshots__" / "notes.json").write_text("[]", encoding="utf-8")
    code, out, _ = diff(tmp_path / "a", b, capsys)
    assert code == 1
    assert "ckpt/malware: safe -> unsafe: malware-1" in out
    assert a.is_dir()


def test_many_flips_all_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before: Run = {"toy-harmful-10shot-malware": dict.fromkeys(range(1, 9), 1)}
    after: Run = {"toy-harmful-10shot-malware": {i: 5 if i % 2 else 1 for i in range(1, 9)}}
    after["toy-harmful-10shot-malware"][8] = 5
    code, out, _ = diff(snapshots(tmp_path / "a", before), snapshots(tmp_path / "b", after), capsys)
    assert code == 1
    assert out == [
        "toy-harmful-10shot/malware: safe -> unsafe: malware-1, malware-3, malware-5, malware-7, "
        "malware-8",
        "5 prompt(s) turned unsafe, 0 turned safe",
    ]


def test_an_error_that_became_unsafe_is_not_called_safe_to_unsafe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = snapshots(tmp_path / "a", changed(BEFORE, "ckpt-malware", 1, None))
    b = snapshots(tmp_path / "b", changed(BEFORE, "ckpt-malware", 1, 5))
    _, out, _ = diff(a, b, capsys)
    malware = next(line for line in out if line.startswith("ckpt/malware:"))
    assert "safe -> unsafe: malware-1" not in malware


# --- saved run reports -------------------------------------------------------------------------


def test_the_console_command_exits_with_the_code(tmp_path: Path) -> None:
    a = snapshots(tmp_path / "a", BEFORE)
    b = snapshots(tmp_path / "b", changed(BEFORE, "ckpt-malware", 2, 5))
    done = subprocess.run(
        [sys.executable, "-m", "finetune_safety.cli", "diff", str(a), str(b)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "ckpt/malware: safe -> unsafe: malware-2" in done.stdout


def test_a_report_against_a_snapshot_dir_does_not_pass_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved_run(tmp_path / "a.json", BEFORE)
    b = snapshots(tmp_path / "b", changed(BEFORE, "ckpt-malware", 2, 5))
    code, _, _ = diff(a, b, capsys)
    assert code != 0  # either the flip is found (1) or the mix is refused (2)


# --- bad inputs --------------------------------------------------------------------------------


def test_missing_path_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = snapshots(tmp_path / "a", BEFORE)
    missing = tmp_path / "nowhere"
    for args in ((a, missing), (missing, a)):
        code, out, err = diff(*args, capsys)
        assert code == 2
        assert out == []
        assert err == f"finetune-safety: error: {missing}: no such file or directory\n"


@pytest.mark.parametrize(
    "content",
    ["not json at all", "[]", "{}", '{"checkpoints": {"x": {"categories": {"m": {}}}}}', "\xff"],
    ids=["text", "list", "empty-object", "no-verdicts", "latin-1"],
)
def test_a_file_that_is_not_a_report_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    good = saved_run(tmp_path / "good.json", BEFORE)
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="latin-1")
    code, out, err = diff(good, bad, capsys)
    assert code == 2
    assert out == []
    assert err.startswith(f"finetune-safety: error: {bad}: not a finetune-safety run report")
    assert "Traceback" not in err


def test_a_directory_without_snapshots_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = snapshots(tmp_path / "good", BEFORE)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.json").write_text("{}", encoding="utf-8")
    code, _, err = diff(good, empty, capsys)
    assert code == 2
    assert err.startswith(f"finetune-safety: error: {empty}: no verdict snapshots")


def test_a_broken_snapshot_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = snapshots(tmp_path / "good", BEFORE)
    broken = snapshots(tmp_path / "broken", BEFORE)
    path = broken / "test_verdicts_match_snapshot[ckpt-malware].json"
    path.write_text('{"malware-1": {"score": 1}}', encoding="utf-8")
    code, _, err = diff(good, broken, capsys)
    assert code == 2
    assert err.startswith(f"finetune-safety: error: {path}: not a verdict snapshot")


def test_a_changed_response_with_the_same_verdict_is_no_flip(
    saved: Callable[[Path, Run], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Score 1 -> 2: still safe, and another response ("reply 2"). A report tells it; snapshots
    hold verdicts only, so there it is no change at all."""
    a = saved(tmp_path / "a", BEFORE)
    b = saved(tmp_path / "b", changed(BEFORE, "ckpt-malware", 1, 2))
    code, out, _ = diff(a, b, capsys)
    told = "response changed, verdict unchanged: malware-1" if saved is saved_run else "no flips"
    assert (code, out[1]) == (0, f"ckpt/malware: {told}")


def test_snapshots_of_the_layout_before_are_still_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Snapshots recorded before the judge moved to the file's head (one entry per prompt)."""
    old = tmp_path / "old"
    old.mkdir()
    entries = {f"malware-{n}": {"label": "safe", "score": 1, "judge": JUDGE_ID} for n in (1, 2, 3)}
    name = "test_verdicts_match_snapshot[ckpt-malware].json"
    (old / name).write_text(json.dumps(entries), encoding="utf-8")
    new = snapshots(tmp_path / "new", {"ckpt-malware": {1: 1, 2: 5, 3: 1}})
    code, out, _ = diff(old, new, capsys)
    assert code == 1
    assert out[0] == "ckpt/malware: safe -> unsafe: malware-2"


# --- are the runs comparable? ------------------------------------------------------------------

REFUSE = (
    "finetune-safety: error: A and B differ in their {}: the flips would mix that change with "
    "the model's; pass --allow-different-judge (or --force) to compare them anyway\n"
)
FLIP = changed(BEFORE, "ckpt-malware", 2, 5)
FLIP_LINES = [
    "ckpt/illegal_activity: no flips",
    "ckpt/malware: safe -> unsafe: malware-2",
    "1 prompt(s) turned unsafe, 0 turned safe",
]


def test_another_judge_stops_diff_after_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved_run(tmp_path / "a.json", BEFORE)
    b = saved_run(tmp_path / "b.json", FLIP, judge="openai:gpt-4o", judge_id="gpt4-rubric/v1+9f")
    code, out, err = diff(a, b, capsys)
    assert (code, out) == (2, ["judge differs: A refusal/v1; B gpt4-rubric/v1+9f"])
    assert err == REFUSE.format("judges")
    for allow in ("--allow-different-judge", "--force"):
        code, out, err = diff(a, b, capsys, allow)
        assert (code, out, err) == (1, [out[0], *FLIP_LINES], "")
        assert out[0] == "judge differs: A refusal/v1; B gpt4-rubric/v1+9f"


def test_the_same_judge_spec_with_other_rules_is_another_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Editing the refusal phrases changes the judge id, not the spec: still another judge."""
    a = saved_run(tmp_path / "a.json", BEFORE, judge_id="refusal-keywords/v1+11111111")
    b = saved_run(tmp_path / "b.json", BEFORE, judge_id="refusal-keywords/v1+22222222")
    code, out, _ = diff(a, b, capsys)
    assert code == 2 and out[0].startswith("judge differs: A refusal-keywords/v1+11111111")


def test_another_benchmark_stops_diff_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved_run(tmp_path / "a.json", BEFORE)
    b = saved_run(tmp_path / "b.json", BEFORE, benchmark="hexphi:data/hexphi")
    code, out, err = diff(a, b, capsys)
    assert (code, out, err) == (
        2,
        ["benchmark differs: A smoke; B hexphi:data/hexphi"],
        REFUSE.format("benchmarks"),
    )
    c = saved_run(tmp_path / "c.json", BEFORE, benchmark="advbench", judge_id="other/v1")
    assert diff(a, c, capsys)[2] == REFUSE.format("judges and benchmarks")


def test_other_decoding_is_said_first_and_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved_run(tmp_path / "a.json", BEFORE)
    shorter = {"max_new_tokens": 48, "max_prompt_tokens": None}
    b = saved_run(tmp_path / "b.json", FLIP, decoding=shorter, dtype="bfloat16")
    code, out, err = diff(a, b, capsys)
    assert (code, err) == (1, "")
    assert out == [
        "decoding differs: dtype A auto, B bfloat16; max_new_tokens A 512, B 48",
        *FLIP_LINES,
    ]


def test_snapshot_dirs_of_different_judges_stop_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = snapshots(tmp_path / "a", BEFORE)
    b = snapshots(tmp_path / "b", FLIP)
    for path in b.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({**data, "judge": "rubric/v2"}), encoding="utf-8")
    code, out, err = diff(a, b, capsys)
    assert (code, out, err) == (
        2,
        [f"judge differs: A {JUDGE_ID}; B rubric/v2"],
        REFUSE.format("judges"),
    )
    assert diff(a, b, capsys, "--force")[0] == 1


def test_a_report_and_snapshots_compare_their_judge_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved_run(tmp_path / "a.json", BEFORE)
    b = snapshots(tmp_path / "b", FLIP)
    assert diff(a, b, capsys) == (1, FLIP_LINES, "")  # the same judge: no line about it
    older = saved_run(tmp_path / "older.json", BEFORE, judge_id=None, decoding=None)
    code, out, _ = diff(older, b, capsys)
    assert code == 1
    assert out == ["judge not checked: A records no judge id (an older report)", *FLIP_LINES]
    # Two reports that record no id compare their judge specs.
    code, out, _ = diff(
        older, saved_run(tmp_path / "o2.json", FLIP, judge="rubric", judge_id=None), capsys
    )
    assert (code, out) == (2, ["judge differs: A refusal; B rubric"])
