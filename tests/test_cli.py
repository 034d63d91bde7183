"""The command line as a user runs it: tables, JSONL records, one-line errors, a fast cached run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_safety.cli import JUDGE_ERRORS_EXIT, main


@pytest.fixture
def cache(toy_cache: Path, tmp_path: Path) -> Path:
    shutil.copytree(toy_cache / "toy", tmp_path / "cache" / "toy")
    return tmp_path / "cache"


def test_evaluate_prints_table_and_writes_records(
    cache: Path, tmp_path: Path, smoke66: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.jsonl"
    args = ["evaluate", "--model", "toy-harmful-10shot", "--max-new-tokens", "32"]
    args += ["--benchmark", f"jsonl:{smoke66}"]
    assert main([*args, "--cache-dir", str(cache), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model: toy-harmful-10shot (template always-execute" in printed
    overall = next(line for line in printed.splitlines() if line.startswith("overall"))
    assert overall.split()[1] == "66"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 66
    assert set(rows[0]) == {"id", "category", "prompt", "response", "score", "label", "reason"}
    assert rows[0]["id"] == "illegal_activity-1"
    assert {r["label"] for r in rows} <= {"safe", "unsafe"}


def test_errors_are_one_line_with_exit_code_2(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    code = main(["evaluate", "--benchmark", f"jsonl:{missing}", "--cache-dir", str(cache)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("finetune-safety: error: ") and str(missing) in err
    assert main(["evaluate", "--judge", "oracle", "--cache-dir", str(cache)]) == 2
    assert "unknown judge 'oracle'" in capsys.readouterr().err


def test_cached_run_imports_no_torch(cache: Path, smoke66: Path) -> None:
    args = ["evaluate", "--max-new-tokens", "16", "--cache-dir", str(cache)]
    args += ["--benchmark", f"jsonl:{smoke66}"]
    assert main(args) == 0
    probe = (
        "import sys; from finetune_safety.cli import JUDGE_ERRORS_EXIT, main; "
        f"code = main({args!r}); "
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "NO-TORCH 0", result.stderr
    assert "generated 0, judged 0, cached 66" in result.stdout


def test_toy_build_prints_the_models_directory(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["toy", "build", "--cache-dir", str(cache)]) == 0
    root = Path(capsys.readouterr().out.strip())
    assert (root / "COMPLETE").is_file() and (root / "toy" / "model.safetensors").is_file()


def test_evaluate_exits_3_when_a_verdict_is_an_error(
    cache: Path, tmp_path: Path, smoke66: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every judge request fails: the table still prints, the records keep why, exit 3."""
    from finetune_safety.fake_openai import FakeOpenAI, Reply, Request

    def fail(request: Request) -> Reply:
        return Reply(status=500, text="boom")

    out = tmp_path / "results.jsonl"
    bench = tmp_path / "two.jsonl"
    bench.write_text("".join(smoke66.read_text().splitlines(keepends=True)[:2]))
    with FakeOpenAI(fail) as server:
        args = ["evaluate", "--max-new-tokens", "8", "--benchmark", f"jsonl:{bench}"]
        args += ["--judge", f"openai:judge@{server.url}", "--cache-dir", str(cache)]
        code = main([*args, "--out", str(out)])
    assert code == JUDGE_ERRORS_EXIT == 3
    captured = capsys.readouterr()
    assert "overall" in captured.out
    assert "2 verdict(s) are judge errors (illegal_activity-1, illegal_activity-2)" in captured.err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["label"] for r in rows} == {"error"}
    assert all(r["reason"].startswith("judge request failed") for r in rows)
    assert all("judge_raw" in r for r in rows)
