"""The plugin fails closed and stays out of the way: pytester runs of a user's project.

Inert outside the gate tests (an unrelated suite with its own ``checkpoint`` fixture and a
broken table passes untouched); a broken or empty configuration stops a run that selects gate
tests (exit 4); a judge that answers nothing fails the gate; unrecorded snapshots are skipped
with the command that records them, or fail when strict.
"""

from __future__ import annotations

import pytest
from harness import FAST_TABLE, Dist, Project, output, prompt_text

from finetune_safety.testing.fake_openai import (
    FakeOpenAI,
    Reply,
    Request,
    refusal_scorer,
    rubric_instruction,
)

BROKEN = '[tool.finetune_safety]\nbenchmark = "hexphi:/nonexistent"\n'
OWN_FIXTURE = """
import pytest


@pytest.fixture
def checkpoint():
    return 1


def test_x(checkpoint):
    assert checkpoint == 1
"""
#: Records whether the plugin read the configuration at all.
SPY_CONFTEST = """
import pathlib

import finetune_safety.suite.run as run

_load_config = run.load_config


def _spy(*args, **kwargs):
    pathlib.Path("config-was-read").write_text("yes")
    return _load_config(*args, **kwargs)


run.load_config = _spy
"""


def test_unrelated_tests_are_untouched_by_a_broken_table(project: Project) -> None:
    project.pyproject(BROKEN)
    project.pytester.mkdir("tests")
    (project.path / "tests" / "test_x.py").write_text(OWN_FIXTURE, encoding="utf-8")
    (project.path / "tests" / "conftest.py").write_text(SPY_CONFTEST, encoding="utf-8")
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "tests", "-v")
    assert result.ret == 0, output(result)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_x PASSED*"])  # no parametrization of its fixture
    # pytest lists installed plugins; beyond that line, no header, table or config message.
    assert "finetune-safety:" not in output(result)
    assert not (project.path / "cache").joinpath("results.sqlite").exists()
    assert not (project.path / "config-was-read").exists()  # not even parsed
    # A valid table is not read either.
    project.pyproject(FAST_TABLE)
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "tests")
    assert result.ret == 0 and not (project.path / "config-was-read").exists()
    project.pyproject(BROKEN)

    # The same table stops a run that selects the gate tests, naming the key.
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "safety_tests")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: finetune-safety: *nonexistent*"])
    assert "Traceback" not in output(result)


def fail_all(request: Request) -> Reply:
    return Reply(status=500, text="server exploded")


def test_a_judge_that_answers_nothing_fails_closed(
    project: Project, fake_openai: FakeOpenAI
) -> None:
    """Every judgment errors and max_judge_errors allows them all: the gates still fail, naming
    the prompts and why; nothing passes on zero verdicts."""
    table = "[tool.finetune_safety]\nmax_retries = 0\nmax_new_tokens = 48\n"
    table += '[tool.finetune_safety.checkpoints]\nmine = "toy-benign"\n'
    table += "[tool.finetune_safety.thresholds]\nmax_judge_errors = 1000\n"
    project.pyproject(table)
    fake_openai.script = fail_all
    gates = "safety_rate or safety_regression or safety_overall"
    result = project.run("-m", gates, "--safety-judge", f"openai:judge@{fake_openai.url}", "-rf")
    result.assert_outcomes(failed=5, deselected=2)
    result.stdout.fnmatch_lines(
        [
            "*mine/illegal_activity: too few verdicts to gate (checkpoint 0/3 judged; "
            "min_judged 0.9); judge errors: illegal_activity-1: judge request failed*",
            "*mine/overall: too few verdicts to gate (checkpoint 0/6 judged, base 0/6 judged;*",
        ]
    )


def test_min_judged_fails_a_category_with_too_few_verdicts(
    project: Project, fake_openai: FakeOpenAI
) -> None:
    """One error of three prompts: 2/3 judged is below the default 0.9; at 0.5 it passes."""
    broken = prompt_text("illegal_activity-2")

    def one_error(request: Request) -> Reply:
        if rubric_instruction(request) == broken:
            return Reply(status=500)
        return refusal_scorer(request)

    table = "[tool.finetune_safety]\nmax_retries = 0\nmax_new_tokens = 48\n"
    table += '[tool.finetune_safety.checkpoints]\nmine = "toy-benign"\n'
    table += "[tool.finetune_safety.thresholds]\nmax_judge_errors = 1000\n"
    project.pyproject(table)
    fake_openai.script = one_error
    judge = ("--safety-judge", f"openai:judge@{fake_openai.url}")
    result = project.run("-m", "safety_rate", *judge, "-rf")
    result.assert_outcomes(failed=1, passed=1, deselected=5)
    result.stdout.fnmatch_lines(["*mine/illegal_activity: too few verdicts*2/3 judged*"])
    project.pyproject(table + "min_judged = 0.5\n")
    result = project.run("-m", "safety_rate", *judge)
    result.assert_outcomes(passed=2, deselected=5)


def test_unrecorded_snapshots_are_skipped_or_fail_when_strict(project: Project) -> None:
    mine = '[tool.finetune_safety.checkpoints]\nmine = "toy-benign"\n'
    project.pyproject(FAST_TABLE + mine)
    result = project.run("-m", "safety_snapshot", "-rs")
    result.assert_outcomes(skipped=2, deselected=5)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "SKIPPED*mine/illegal_activity: no recorded verdict snapshot yet; record it with: "
            "pytest 'safety_tests/test_safety.py::test_verdicts_match_snapshot[[]mine-"
            "illegal_activity[]]' --snapshot-update"
        ]
    )
    strict = project.run("-m", "safety_snapshot", "--safety-snapshot-strict")
    strict.assert_outcomes(failed=2, deselected=5)
    project.pyproject(
        "[tool.finetune_safety]\nmax_new_tokens = 48\nsnapshot_strict = true\n"
        '[tool.finetune_safety.checkpoints]\nmine = "toy-benign"\n'
    )
    project.run("-m", "safety_snapshot").assert_outcomes(failed=2, deselected=5)
    project.run("-m", "safety_snapshot", "--snapshot-update").assert_outcomes(
        passed=2, deselected=5
    )
    project.run("-m", "safety_snapshot").assert_outcomes(passed=2, deselected=5)


def test_empty_checkpoints_table_is_a_usage_error(bare_project: Project, dist: Dist) -> None:
    """In one process and under xdist alike: one line, no internal error from the workers."""
    bare_project.pyproject("[tool.finetune_safety.checkpoints]\n")
    result = bare_project.run(*dist.args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = "finetune-safety: tool.finetune_safety.checkpoints: empty: name at least one"
    text = output(result)
    assert message in text
    assert "INTERNALERROR" not in text and "Traceback" not in text
    if not dist.workers:  # under xdist, pytest prints the controller's exit in its own way
        result.stderr.fnmatch_lines([f"ERROR: {message}*"])


def test_an_empty_benchmark_is_a_usage_error_naming_it(project: Project) -> None:
    (project.path / "empty.jsonl").write_text("", encoding="utf-8")
    result = project.run_inline("--safety-benchmark=jsonl:empty.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: finetune-safety: *empty.jsonl*no prompts*"])


def test_rootdir_taken_from_the_cache_path_is_named(project: Project) -> None:
    """``--safety-cache-dir PATH`` (space form) before the tests: pytest may pick its rootdir
    from PATH (here another project's) and never read this project's table."""
    project.pyproject(FAST_TABLE)
    other = project.path.parent / f"{project.path.name}-other"
    (other / "cache").mkdir(parents=True)
    (other / "pyproject.toml").write_text("[tool.pytest.ini_options]\n", encoding="utf-8")
    result = project.pytester.runpytest_subprocess(
        "--safety-cache-dir", str(other / "cache"), "safety_tests", "--co"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: finetune-safety: --safety-cache-dir {other / 'cache'}: pytest took its "
            f"rootdir ({other}) from this path and would ignore [[]tool.finetune_safety[]] in "
            f"{project.path / 'pyproject.toml'}; write --safety-cache-dir={other / 'cache'}*"
        ]
    )
    # With '=' the table is read, and the header names it.
    result = project.pytester.runpytest_subprocess(
        f"--safety-cache-dir={other / 'cache'}", "safety_tests", "--co"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"finetune-safety: config {project.path / 'pyproject.toml'}; *"])
