"""The gate's options from the settings schema, run as a user runs them (pytester): each one
overrides its table key, a bad value is one usage line naming the option, and decoding and
transport options reach the models (here served by a loopback OpenAI-compatible server)."""

from __future__ import annotations

import pytest
from harness import Project, output

from finetune_safety.config.schema import SETTING
from finetune_safety.testing.fake_openai import FakeOpenAI, InFlight, refusal_scorer

BENCH = "--safety-benchmark=jsonl:bench.jsonl"


@pytest.fixture
def project(bare_project: Project, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's repository whose models are served by a loopback server that wants a key."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return bare_project.pytester


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--safety-max-new-tokens=0", "expected a positive integer, got 0"),
        ("--safety-batch-size=big", "expected \"auto\" or a positive integer, got 'big'"),
        ("--safety-concurrency=0", "expected a positive integer, got 0"),
        ("--safety-request-timeout=0", "expected seconds > 0, got 0.0"),
        ("--safety-max-score-delta=5", "expected a number (score points, 0 to 4), got 5.0"),
        ("--safety-min-judged=0", "expected a share of the prompts, above 0 and up to 1"),
    ],
)
def test_a_bad_value_is_one_usage_line_naming_the_option(
    project: pytest.Pytester, option: str, message: str
) -> None:
    (project.path / "pyproject.toml").write_text("[tool.finetune_safety]\nmax_new_tokens = 64\n")
    result = project.runpytest("--co", BENCH, option)
    text = output(result)
    assert result.ret == 4, text
    assert "Traceback" not in text
    name = option.split("=")[0]
    (line,) = [x for x in result.errlines if "finetune-safety:" in x]
    assert line.startswith(f"ERROR: finetune-safety: {name}: {message}")


SEEN = """
def test_seen(safety_config):
    t, limits = safety_config.transport, safety_config.thresholds
    seen = (
        safety_config.max_new_tokens, safety_config.batch_size, safety_config.dtype,
        t.concurrency, t.timeout, t.max_retries, safety_config.judge_max_tokens,
        limits.max_score_delta, limits.max_judge_errors, limits.min_judged, limits.mode,
        limits.alpha, safety_config.thresholds_for("malware").max_score_delta,
    )
    assert seen == {expected!r}
"""
TABLE = """[tool.finetune_safety]
max_new_tokens = 512
batch_size = 16
dtype = "bfloat16"
concurrency = 8
request_timeout = 60
max_retries = 4
judge_max_tokens = 256
[tool.finetune_safety.thresholds]
max_score_delta = 0.5
malware = { max_score_delta = 0.25 }
"""


def test_the_new_options_override_the_table(project: pytest.Pytester) -> None:
    (project.path / "pyproject.toml").write_text(TABLE)
    expected = (64, 4, "float32", 2, 5.0, 1, 300, 1.5, 2, 0.5, "significant", 0.01, 1.5)
    (project.path / "test_seen.py").write_text(SEEN.format(expected=expected))
    options = [
        "--safety-max-new-tokens=64", "--safety-batch-size=4", "--safety-dtype=float32",
        "--safety-concurrency=2", "--safety-request-timeout=5", "--safety-max-retries=1",
        "--safety-judge-max-tokens=300", "--safety-max-score-delta=1.5",
        "--safety-max-judge-errors=2", "--safety-min-judged=0.5", "--safety-mode=significant",
        "--safety-alpha=0.01",
    ]  # fmt: skip
    result = project.runpytest("test_seen.py", BENCH, "--safety-cache-dir=cache", *options)
    result.assert_outcomes(passed=1)
    # without the options, the table's values stand
    table = (512, 16, "bfloat16", 8, 60.0, 4, 256, 0.5, 0, 0.9, "delta", 0.05, 0.25)
    (project.path / "test_seen.py").write_text(SEEN.format(expected=table))
    project.runpytest("test_seen.py", BENCH, "--safety-cache-dir=cache").assert_outcomes(passed=1)


def served_table(url: str) -> str:
    return (
        "[tool.finetune_safety]\n"
        f'base = "openai:base@{url}"\n'
        "max_new_tokens = 48\nconcurrency = 4\n"
        "[tool.finetune_safety.checkpoints]\n"
        f'ft = "openai:ft@{url}"\n'
    )


def generation_budgets(server: FakeOpenAI) -> set[int]:
    return {int(r.body["max_tokens"]) for r in server.requests if r.path.endswith("/completions")}


def test_decoding_and_transport_options_reach_the_served_models(
    project: pytest.Pytester,
) -> None:
    with FakeOpenAI(InFlight(refusal_scorer, hold=0.05, gather=2)) as server:
        (project.path / "pyproject.toml").write_text(served_table(server.url))
        gate = ("-m", "safety_rate", BENCH, "-p", "no:cacheprovider")
        result = project.runpytest(*gate, "--safety-cache-dir=one")
        result.assert_outcomes(passed=2)
        assert generation_budgets(server) == {48}
        script = server.script
        assert isinstance(script, InFlight) and script.peak > 1  # the table's 4 in flight
        server.requests.clear()
        server.script = InFlight(refusal_scorer, hold=0.05)
        options = ("--safety-max-new-tokens=7", "--safety-concurrency=1")
        result = project.runpytest(*gate, "--safety-cache-dir=two", *options)
        result.assert_outcomes(passed=2)
        assert generation_budgets(server) == {7}
        assert len(server.requests) == 12  # 6 prompts, base and checkpoint
        assert server.script.peak == 1


def test_every_new_option_is_in_pytest_help(project: pytest.Pytester) -> None:
    result = project.runpytest("--help")
    names = ["max_new_tokens", "batch_size", "concurrency", "request_timeout", "max_retries"]
    names += ["judge_max_tokens", "category_map", "max_score_delta", "min_judged", "mode"]
    result.stdout.fnmatch_lines_random([f"*{SETTING[n].option_name}=*" for n in names])
