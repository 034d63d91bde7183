"""Extension through pytest hooks: a project's conftest.py adds a judge, a target and a benchmark,
and the safety suite runs them through the gate as it runs the built-ins."""

from __future__ import annotations

import json

import pytest
from harness import DICT_HOOKS, MARKER_JUDGE, REPO, Project, output, table_block

from finetune_safety.testing.fake_openai import FakeOpenAI, Reply

CONFTEST = MARKER_JUDGE + DICT_HOOKS

OPTIONS = (
    "-p",
    "no:randomly",
    "-p",
    "no:cacheprovider",
    "--safety-base=dict:aligned",
    "--safety-checkpoint=harmful=dict:harmful",
    "--safety-checkpoint=same=dict:aligned",
    "--safety-benchmark=twocat",
    "--safety-judge=marker",
    "--safety-cache-dir=cache",
)


@pytest.fixture
def project(bare_project: Project) -> pytest.Pytester:
    """A user's repository whose conftest.py brings its own judge, targets and benchmark."""
    bare_project.pytester.makeconftest(CONFTEST)
    return bare_project.pytester


def test_conftest_judge_target_and_benchmark_run_through_the_gate(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest_subprocess(
        "safety_tests", *OPTIONS, "--snapshot-update", "--safety-report-json=report.json"
    )
    text = output(result)
    assert "benchmark twocat (6 prompts); judge marker" in text
    # The harmful checkpoint fails its rate and regression gates on malware only, and its
    # pooled gate (3 of 6 prompts unsafe).
    failed = sorted(
        line.split("::")[1].split(" ")[0] for line in result.outlines if "FAILED" in line
    )
    assert failed == [
        "test_harmfulness_rate[harmful-malware]",
        "test_no_regression_vs_base[harmful-malware]",
        "test_overall_within_limits[harmful]",
    ], text
    result.assert_outcomes(passed=11, failed=3)
    assert "harmful/malware: harmfulness rate 100.0% (3/3)" in text
    block = table_block(result)
    harmful = block[block.index("harmful") :]
    malware = next(line for line in harmful if line.startswith("malware"))
    assert "100.0 [44-100]" in malware and malware.split()[-1] == "FAIL"
    same = block[block.index("same") :]
    assert [line.split()[-1] for line in same if line.startswith(("illegal", "malware"))] == [
        "PASS",
        "PASS",
    ]
    report = json.loads((project.path / "report.json").read_text(encoding="utf-8"))
    assert (report["benchmark"], report["judge"]) == ("twocat", "marker")
    snapshot = project.path / "safety_tests" / "__snapshots__"
    names = sorted(p.stem.partition("[")[2].rstrip("]") for p in snapshot.rglob("*.json"))
    assert names == [
        "harmful-illegal_activity",
        "harmful-malware",
        "same-illegal_activity",
        "same-malware",
    ]
    assert "marker/v1" in next(snapshot.rglob("*harmful-malware*.json")).read_text()
    # A second run answers every case from the store and the snapshots.
    again = project.runpytest_subprocess("safety_tests", *OPTIONS)
    again.assert_outcomes(passed=11, failed=3)


def test_a_spec_no_hook_claims_is_still_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("safety_tests", *OPTIONS, "--safety-judge=oracle")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown judge 'oracle'" in output(result)


def test_a_hook_returning_no_prompts_fails_closed(project: pytest.Pytester) -> None:
    project.makeconftest(CONFTEST + "\n\ndef pytest_safety_load_benchmark(spec):\n    return []\n")
    result = project.runpytest_subprocess("safety_tests", *OPTIONS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "finetune-safety: benchmark 'twocat': no prompts" in output(result)


def test_a_hook_returning_no_judge_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makeconftest(CONFTEST + "\n\ndef pytest_safety_make_judge(spec):\n    return 'judge'\n")
    result = project.runpytest_subprocess("safety_tests", *OPTIONS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "finetune-safety: judge 'marker': the factory returned 'judge'" in output(result)


def test_hooks_leave_the_built_ins_in_place(project: pytest.Pytester) -> None:
    """A spec the conftest does not claim reaches the built-in registry (here: jsonl:)."""
    bench = project.path / "bench.jsonl"
    lines = [
        {"id": f"malware-{i}", "category": "malware", "prompt": f"A malware prompt {i}."}
        for i in (1, 2)
    ]
    bench.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    result = project.runpytest_subprocess(
        "safety_tests", *OPTIONS, f"--safety-benchmark=jsonl:{bench}", "-m", "safety_rate"
    )
    assert "(2 prompts); judge marker" in output(result)
    result.assert_outcomes(passed=1, failed=1)


def _readme_judge() -> str:
    """The custom judge the README shows, exactly as a user would paste it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Your own judges, targets and benchmarks") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_judge_runs_through_the_gate(
    project: pytest.Pytester, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Llama Guard judge, against a fake server that answers as Llama Guard does."""
    fake_openai.script = lambda r: Reply("unsafe\nS2" if "UNSAFE" in r.text else "safe")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-readme")
    project.makeconftest(_readme_judge() + DICT_HOOKS)
    judge = f"--safety-judge=guard:guard-model@{fake_openai.url}"
    options = [o for o in OPTIONS if o != "--safety-judge=marker"]  # a repeat adds a judge
    result = project.runpytest_subprocess("safety_tests", *options, judge, "-m", "safety_rate")
    assert "harmful/malware: harmfulness rate 100.0% (3/3)" in output(result)
    result.assert_outcomes(passed=3, failed=1, deselected=10)
    assert {r.body["model"] for r in fake_openai.requests} == {"guard-model"}
    roles = [[m["role"] for m in r.body["messages"]] for r in fake_openai.requests]
    assert roles and all(r == ["user", "assistant"] for r in roles)
