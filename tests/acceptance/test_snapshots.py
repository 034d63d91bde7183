"""Verdict snapshots are never lost to a run that did not compare them: pytester runs of a user's
project, as a user meets them.

A run stopped by a usage error, or one that selects part of the gate (``-k``, ``-m``, a node id,
``-x``, ``--safety-limit``), leaves every snapshot it did not compare as it was, whatever
``--snapshot-update`` says; only a run of the whole gate finds unused snapshots, and deletes them
under ``--snapshot-update``, listing each. A snapshot that cannot be read fails with one line;
formatting never fails. The runs use conftest doubles (a dict target, a marker judge), so each
takes a second and loads no weights.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import DICT_HOOKS, MARKER_JUDGE, REPO, Dist, Project, output

#: The hooked judge, targets and benchmark: ``harmful`` answers malware prompts unsafely.
HOOKED = ("--safety-base=dict:aligned", "--safety-benchmark=twocat", "--safety-judge=marker")
HARMFUL = "--safety-checkpoint=harmful=dict:harmful"
SAME = "--safety-checkpoint=same=dict:aligned"
NAME = "test_verdicts_match_snapshot[{}].json"
ALL = {
    NAME.format(f"{a}-{c}") for a in ("harmful", "same") for c in ("illegal_activity", "malware")
}
HINT = "Re-run pytest with --snapshot-update to delete"
#: A test of the user's own that keeps an amber snapshot beside the gate.
OWN_SNAPSHOT_TEST = "def test_mine(snapshot):\n    assert snapshot == {'mine': 1}\n"


@pytest.fixture
def hooked(bare_project: Project) -> Project:
    """A project whose conftest.py brings the judge, targets and benchmark."""
    bare_project.pytester.makeconftest(MARKER_JUDGE + DICT_HOOKS)
    bare_project.options = HOOKED
    return bare_project


def contents(project: Project) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in project.snapshot_files().items()}


def recorded(project: Project) -> dict[str, bytes]:
    """All four snapshots recorded by a run of the whole gate with both checkpoints."""
    project.run(HARMFUL, SAME, "--snapshot-update")
    files = contents(project)
    assert set(files) == ALL
    return files


def snapshot_path(project: Project, case: str) -> Path:
    return project.snapshot_files()[NAME.format(case)]


def test_a_usage_error_deletes_no_snapshot(bare_project: Project, dist: Dist) -> None:
    """The gate's 33 recorded snapshots, and a test's own, survive a run that stops with a
    usage error under --snapshot-update; no line invites the deleting re-run."""
    shutil.copytree(
        REPO / "safety_tests" / "__snapshots__",
        bare_project.path / "safety_tests" / "__snapshots__",
    )
    before = contents(bare_project)
    assert len(before) == 33
    bare_project.pytester.mkdir("own_tests")
    (bare_project.path / "own_tests" / "test_own.py").write_text(OWN_SNAPSHOT_TEST, "utf-8")
    own = bare_project.pytester.runpytest_subprocess("own_tests", "--snapshot-update")
    own.assert_outcomes(passed=1)
    amber = bare_project.path / "own_tests" / "__snapshots__" / "test_own.ambr"
    mine = amber.read_bytes()

    for args in (
        ("safety_tests", "--safety-limit", "0", "--snapshot-update"),
        ("safety_tests", "own_tests", "--safety-limit", "0", "--snapshot-update"),
        ("safety_tests", "--safety-limit", "0"),
    ):
        result = bare_project.run(*args, *dist.args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, output(result)
        assert "--safety-limit: expected a positive integer, got 0" in output(result)
        assert contents(bare_project) == before
        assert amber.read_bytes() == mine
        assert HINT not in output(result) and "Deleted" not in output(result)
        assert "Traceback" not in output(result)

    # Any configuration error: a table naming a benchmark that does not exist.
    bare_project.pyproject('[tool.finetune_safety]\nbenchmark = "hexphi:/nonexistent"\n')
    result = bare_project.pytester.runpytest_subprocess(
        "safety_tests", "--snapshot-update", "-p", "no:cacheprovider", *dist.args
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output(result)
    assert contents(bare_project) == before
    assert HINT not in output(result) and "Deleted" not in output(result)


def test_only_a_run_of_the_whole_gate_deletes_unused_snapshots(hooked: Project, dist: Dist) -> None:
    files = recorded(hooked)
    # "harmful" leaves the configuration: its two snapshots are unused from now on.
    partial = {
        "-k": ("-k", "malware"),
        "-m": ("-m", "safety_snapshot"),
        "a node id": ("safety_tests/test_safety.py::test_verdicts_match_snapshot",),
        "a limit": ("--safety-limit", "2"),
    }
    for why, args in partial.items():
        result = hooked.run(SAME, *args, "--snapshot-update", *dist.args)
        assert contents(hooked) == files, why
        assert "finetune-safety: partial run (" in output(result), why
        assert "none was deleted" in output(result), why
        assert "unused verdict snapshot" not in output(result), why
    if not dist.workers:  # how many tests xdist starts before -x stops it depends on timing
        # A run stopped at its first failure (-x) compared only what ran before it.
        result = hooked.run(HARMFUL, "-x", "--snapshot-update")
        assert contents(hooked) == files
        result.stdout.fnmatch_lines(["finetune-safety: partial run (2 of 7 gate tests ran)*"])

    unused = [
        f"  safety_tests/__snapshots__/test_safety/{NAME.format(f'harmful-{c}')}"
        for c in ("illegal_activity", "malware")
    ]
    # The whole gate without --snapshot-update: the unused ones are named, and fail the run.
    result = hooked.run(SAME, *dist.args)
    result.assert_outcomes(passed=7)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    heading = "2 unused verdict snapshot(s), checked by no gate test of the run's configuration"
    result.stdout.fnmatch_lines(
        [
            f"finetune-safety: {heading}; a run of the whole gate with --snapshot-update "
            "deletes them:",
            *unused,
        ]
    )
    assert contents(hooked) == files
    result = hooked.run(SAME, "--snapshot-warn-unused", *dist.args)
    assert result.ret == pytest.ExitCode.OK

    # The whole gate with --snapshot-update deletes them, one line each.
    result = hooked.run(SAME, "--snapshot-update", *dist.args)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"finetune-safety: deleted {heading}:", *unused])
    assert contents(hooked) == {k: v for k, v in files.items() if "same-" in k}


def _edit(path: Path, prompt_id: str, label: str, score: int) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["verdicts"][prompt_id] = {"label": label, "score": score}
    path.write_text(json.dumps(data), encoding="utf-8")


def test_a_limited_run_compares_the_prompts_that_ran(hooked: Project) -> None:
    """--safety-limit 1 runs malware-1 only: the recorded malware-2 and -3 are not "absent"."""
    recorded(hooked)
    path = snapshot_path(hooked, "same-malware")
    _edit(path, "malware-3", "unsafe", 5)  # beyond the limit: neither compared nor rewritten
    edited = path.read_bytes()
    for update in ((), ("--snapshot-update",)):
        result = hooked.run(HARMFUL, SAME, "-m", "safety_snapshot", "--safety-limit", "1", *update)
        result.assert_outcomes(passed=4, deselected=10)
        result.stdout.fnmatch_lines(["finetune-safety: partial run (--safety-limit 1: *"])
        assert path.read_bytes() == edited

    _edit(path, "malware-1", "unsafe", 5)  # within the limit: a flip, named
    result = hooked.run(SAME, "-m", "safety_snapshot", "--safety-limit", "1")
    result.assert_outcomes(passed=1, failed=1, deselected=5)
    result.stdout.fnmatch_lines(
        [
            "same/malware: 1 change(s) from the recorded snapshot (partial run, --safety-limit 1: "
            "compared on the prompts that ran): malware-1 unsafe (5) -> safe (1); if intended, "
            "record them with --snapshot-update"
        ]
    )
    # Re-recording under the limit rewrites malware-1 and keeps malware-2 and -3 as recorded.
    hooked.run(SAME, "-m", "safety_snapshot", "--safety-limit", "1", "--snapshot-update")
    verdicts = json.loads(path.read_text(encoding="utf-8"))["verdicts"]
    assert verdicts == {
        "malware-1": {"label": "safe", "score": 1},
        "malware-2": {"label": "safe", "score": 1},
        "malware-3": {"label": "unsafe", "score": 5},
    }


def _reshaped(text: str) -> bytes:
    data = json.loads(text)
    data["verdicts"] = list(data["verdicts"])
    return json.dumps(data).encode()


#: How a recorded snapshot is spoiled, and what the failing line says about it.
UNREADABLE: dict[str, tuple[Callable[[str], bytes], str]] = {
    "bad JSON": (lambda text: text[:-5].encode(), ":9: not valid JSON (Expecting ',' delimiter)"),
    "a list": (
        lambda text: b"[1, 2]",
        ": not a verdict snapshot: expected a JSON object, found list",
    ),
    "verdicts a list": (
        _reshaped,
        ": not a verdict snapshot: 'verdicts' is not an object of prompt id -> verdict",
    ),
    "a bad label": (
        lambda text: text.replace('"label": "safe"', '"label": "harmless"', 1).encode(),
        ": not a verdict snapshot: verdict 'malware-1' has label 'harmless' "
        "(expected safe, unsafe or error)",
    ),
    "bytes not UTF-8": (
        lambda text: text.replace('"same"', '"s\udcffame"').encode("utf-8", "surrogateescape"),
        ": not UTF-8 text (byte 0xff at offset 20)",
    ),
}


@pytest.mark.parametrize("fault", list(UNREADABLE))
def test_an_unreadable_snapshot_fails_with_one_line(hooked: Project, fault: str) -> None:
    recorded(hooked)
    path = snapshot_path(hooked, "same-malware")
    spoil, said = UNREADABLE[fault]
    path.write_bytes(spoil(path.read_text(encoding="utf-8")))
    result = hooked.run(SAME, "-m", "safety_snapshot")
    result.assert_outcomes(passed=1, failed=1, deselected=5)
    shown = f"safety_tests/__snapshots__/test_safety/{NAME.format('same-malware')}"
    record = "pytest 'safety_tests/test_safety.py::test_verdicts_match_snapshot[same-malware]'"
    line = f"same/malware: snapshot {shown}{said}; re-record it with: {record} --snapshot-update"
    assert line in result.outlines, output(result)
    assert "Traceback" not in output(result) and "change(s)" not in output(result)
    # --snapshot-update re-records it, as the line says.
    again = hooked.run(SAME, "-m", "safety_snapshot", "--snapshot-update")
    again.assert_outcomes(passed=2, deselected=5)
    hooked.run(SAME, "-m", "safety_snapshot").assert_outcomes(passed=2, deselected=5)


def test_formatting_alone_never_fails(hooked: Project) -> None:
    files = recorded(hooked)
    path = snapshot_path(hooked, "same-malware")
    data = json.loads(path.read_text(encoding="utf-8"))
    reformatted = {
        "re-indented": json.dumps(data, indent=7).encode(),
        "keys sorted, one line": json.dumps(data, sort_keys=True).encode(),
        "CRLF line ends and a BOM": b"\xef\xbb\xbf" + files[path.name].replace(b"\n", b"\r\n"),
    }
    for how, text in reformatted.items():
        path.write_bytes(text)
        result = hooked.run(SAME, "-m", "safety_snapshot")
        assert result.ret == pytest.ExitCode.OK, (how, output(result))
        result.assert_outcomes(passed=2, deselected=5)
