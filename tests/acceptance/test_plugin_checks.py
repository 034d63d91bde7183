"""The suite's inputs checked before any work (issue 14): each mistake is a usage error (exit 4)
with one line naming it, no traceback, no download; and the run-wide options that shape a run
(``--safety-limit``, ``--safety-threads``) and its progress lines."""

from __future__ import annotations

import json
import os

import pytest
from harness import Dist, Project, output

from finetune_safety.testing.fake_openai import FakeOpenAI, Reply


@pytest.fixture
def project(bare_project: Project) -> pytest.Pytester:
    """A user's repository without models: these runs stop at collection or are served."""
    return bare_project.pytester


def usage_error(pytester: pytest.Pytester, *args: str) -> str:
    result = pytester.runpytest("--co", "--safety-benchmark=jsonl:bench.jsonl", *args)
    text = output(result)
    assert result.ret == 4, text
    assert "Traceback" not in text
    (line,) = [x for x in result.errlines if "finetune-safety:" in x]
    return line


@pytest.mark.parametrize(
    ("pyproject", "args", "expected"),
    [
        ("", ("--safety-report-json", "."), "--safety-report-json .: is a directory"),
        ("", ("--safety-report-md", "sub"), "--safety-report-md sub: is a directory"),
        (
            '[tool.finetune_safety.checkpoints]\nft = { model = "toy", template = "lama2" }\n',
            (),
            "tool.finetune_safety.checkpoints.ft.template: unknown template 'lama2'",
        ),
        (
            '[tool]\nfinetune_safety = "oops"\n',
            (),
            "[tool.finetune_safety] must be a table",
        ),
        ("", ("--safety-checkpoint", "mine=out/a/b"), "model 'out/a/b': no directory at"),
        ("", ("--safety-checkpoint", "mine=empty"), "not a Hugging Face model directory"),
        (
            "",
            ("--safety-checkpoint", "mine=org/not-cached"),
            "not in the local cache; offline (HF_HUB_OFFLINE is set), so nothing was downloaded",
        ),
        ("", ("--safety-base", "openai:m@http://h:99999/v1"), "invalid URL"),
        ("", ("--safety-cache-dir", "blocker"), "cache directory"),
        ("", ("--safety-checkpoint", "mine=mixed"), "holds both a full model (config.json, "),
        (
            "",
            ("--safety-checkpoint", "mine=fake.gguf"),
            "--safety-checkpoint mine: {root}/fake.gguf: not a GGUF file (it starts with b'<htm'",
        ),
        (
            "",
            ("--safety-judge", "hf:/no/such/dir"),
            "--safety-judge hf:/no/such/dir: no model directory at /no/such/dir",
        ),
        (
            '[tool.finetune_safety]\njudge = "hf:./judge"\n',
            (),
            "tool.finetune_safety.judge hf:./judge: no model directory at {root}/judge",
        ),
    ],
    ids=[
        "report-dir", "md-dir", "template", "not-a-table", "not-a-hub-id", "no-config-json",
        "offline-hub-id", "port", "cache-is-a-file", "model-and-adapter", "not-gguf", "judge-path",
        "judge-in-table",
    ],
)  # fmt: skip
def test_mistakes_are_usage_errors_before_any_work(
    project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    pyproject: str,
    args: tuple[str, ...],
    expected: str,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (project.path / "pyproject.toml").write_text(pyproject)
    (project.path / "sub").mkdir()
    (project.path / "empty").mkdir()
    (project.path / "blocker").write_text("x")
    (project.path / "fake.gguf").write_text("<html>Not Found</html>")
    (project.path / "mixed").mkdir()
    for name in ("config.json", "model.safetensors", "adapter_config.json"):
        (project.path / "mixed" / name).write_text("{}")
    line = usage_error(project, *args)
    assert expected.format(root=project.path) in line


def test_a_pyproject_that_is_not_utf8_is_a_usage_error(project: pytest.Pytester) -> None:
    """The plugin reads the table: a Latin-1 pyproject.toml is one line, exit 4. (Without
    ``-c``, pytest 9 parses pyproject.toml itself, for its settings or to warn that it ignores
    them, before any plugin loads, and stops there with its own traceback: pytest's, not ours.)"""
    (project.path / "pytest.ini").write_text("[pytest]\n")
    pyproject = project.path / "pyproject.toml"
    pyproject.write_bytes(b"[tool.finetune_safety]\n# caf\xe9\nlimit = 1\n")
    line = usage_error(project, "-c", "pytest.ini")
    expected = f"{pyproject}:2: not UTF-8 (byte 0xe9); TOML files are UTF-8: save it as UTF-8"
    assert line.endswith(expected)


def test_existing_relative_path_resolves_against_the_rootdir(project: pytest.Pytester) -> None:
    lora = project.path / "out" / "my-lora"
    lora.mkdir(parents=True)
    (lora / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "toy"}))
    (project.path / "pyproject.toml").write_text("")
    (project.path / "safety_tests" / "deeper").mkdir()
    project.chdir()
    os.chdir(project.path / "safety_tests" / "deeper")  # pytest started from a subdirectory
    result = project.runpytest(
        str(project.path / "safety_tests"),
        "--co",
        "--safety-benchmark=jsonl:../../bench.jsonl",
        "--safety-checkpoint=mine=out/my-lora",
    )
    assert result.ret == 0, output(result)
    result.stdout.fnmatch_lines(["*checkpoints mine;*"])


def test_near_miss_table_name_warns(project: pytest.Pytester) -> None:
    (project.path / "pyproject.toml").write_text('[tool.finetune-safety]\nbase = "toy"\n')
    result = project.runpytest_subprocess("--co", "--safety-benchmark=jsonl:bench.jsonl")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*[[]tool.finetune-safety[]] is not read; the table is [[]tool.finetune_safety[]]*"]
    )


def test_limit_takes_the_first_prompts_of_each_category(project: pytest.Pytester) -> None:
    (project.path / "pyproject.toml").write_text("")
    result = project.runpytest("--co", "--safety-benchmark=jsonl:bench.jsonl", "--safety-limit=2")
    assert result.ret == 0, output(result)
    result.stdout.fnmatch_lines(["*benchmark jsonl:bench.jsonl (4 prompts)*"])


def test_threads_are_shared_between_xdist_workers(project: pytest.Pytester, dist: Dist) -> None:
    (project.path / "pyproject.toml").write_text("[tool.finetune_safety]\nthreads = 4\n")
    project.makepyfile(
        test_probe="""
        import os
        from pathlib import Path

        def probe(name):
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            Path(f"threads-{worker}-{name}").write_text(os.environ["OMP_NUM_THREADS"])

        def test_a(safety_session):
            probe("a")

        def test_b(safety_session):
            probe("b")
        """
    )

    def seen() -> set[str]:
        found = {p.read_text() for p in project.path.glob("threads-*")}
        for p in project.path.glob("threads-*"):
            p.unlink()
        return found

    args = ("test_probe.py", "--safety-benchmark=jsonl:bench.jsonl", "-p", "no:randomly")
    workers = max(1, dist.workers)
    assert project.runpytest_subprocess(*args, *dist.args).ret == 0
    assert seen() == {str(4 // workers)}  # the table's value, in the one process or shared
    assert project.runpytest_subprocess(*args, *dist.args, "--safety-threads=6").ret == 0
    assert seen() == {str(6 // workers)}  # the option wins over the table


def test_progress_lines_reach_the_terminal_during_the_run(
    project: pytest.Pytester, fake_openai: FakeOpenAI
) -> None:
    """Generation and judging say how far they are while tests run (not after, not in a
    captured section), so a first run on a slow machine is never a silent line."""
    (project.path / "pyproject.toml").write_text("[tool.finetune_safety]\nmax_new_tokens = 8\n")
    fake_openai.script = lambda request: Reply("Sure, here it is.")
    result = project.runpytest_subprocess(
        "safety_tests",
        "-v",
        "--safety-benchmark=jsonl:bench.jsonl",
        f"--safety-base=openai:base@{fake_openai.url}",
        f"--safety-checkpoint=served=openai:tuned@{fake_openai.url}",
        "-m",
        "safety_rate",
    )
    lines = result.outlines
    first_test = next(i for i, x in enumerate(lines) if "::test_harmfulness_rate[" in x)
    todo = [i for i, x in enumerate(lines) if "[finetune-safety] generating (" in x]
    assert todo and all(i >= first_test for i in todo[:1])
    assert any("[finetune-safety] judging: 6 prompts to do" in x for x in lines)
    captured = [i for i, x in enumerate(lines) if "Captured" in x]
    assert not captured or min(captured) > max(todo)


def test_under_pytest_lines_reach_the_terminal_not_the_captured_output(
    pytester: pytest.Pytester,
) -> None:
    """A safety run (here: the gate collected, so the session opened) shows progress live."""
    pytester.makepyfile(
        test_slow="""
        import sys
        from finetune_safety._util import progress
        from finetune_safety.gate import *

        def test_building(safety_session):
            progress.emit("building the toy: step 1")
            print("ordinary output", file=sys.stderr)
            assert False
        """
    )
    result = pytester.runpytest("-k", "test_building")
    lines = result.outlines
    shown = next(i for i, line in enumerate(lines) if "building the toy: step 1" in line)
    captured = next(i for i, line in enumerate(lines) if "Captured stderr call" in line)
    # Printed while the test ran (before the failure report), and not captured with its output.
    assert shown < captured
    assert "ordinary output" in lines[captured + 1]
    assert not any("building the toy" in line for line in lines[captured:])
