"""The command line as a user runs it: tables, JSONL records, one-line errors, a fast cached run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_safety.cli import main


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
    assert set(rows[0]) == {"id", "category", "prompt", "response", "score", "label"}
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
        "import sys; from finetune_safety.cli import main; "
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


def test_dtype_is_part_of_the_generation_key(
    cache: Path, smoke66: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The toy's ``auto`` is float32; bf16 answers are generated and stored apart."""
    args = ["evaluate", "--max-new-tokens", "8", "--benchmark", f"jsonl:{smoke66}"]
    args += ["--cache-dir", str(cache)]
    runs = {}
    for dtype in ("auto", "float32", "bfloat16", "bfloat16"):
        assert main([*args, "--dtype", dtype, "--batch-size", "auto"]) == 0
        printed = capsys.readouterr().out
        runs.setdefault(dtype, []).append(printed.split("generated ")[1].split(",")[0])
    assert runs == {"auto": ["66"], "float32": ["0"], "bfloat16": ["66", "0"]}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-size", "0", "expected auto or a positive integer, got '0'"),
        ("--batch-size", "big", "expected auto or a positive integer, got 'big'"),
        ("--dtype", "bf16", "invalid choice: 'bf16'"),
    ],
)
def test_batch_size_and_dtype_usage_errors(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", option, value])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
