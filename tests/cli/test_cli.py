"""The command line as a user runs it: tables, JSONL records, one-line errors, a fast cached run."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetune_safety.cli import JUDGE_ERRORS_EXIT, build_parser, main
from finetune_safety.testing.fake_openai import FakeOpenAI, Reply, Request, unreachable_url


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


# --- issue 14: version, help, paths checked first, the project's cache, limits, threads --------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert re.fullmatch(r"finetune-safety \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


def test_every_option_has_help() -> None:
    missing = [
        f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        for parser in all_parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_out_that_is_a_directory_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert main(["evaluate", "--out", str(tmp_path), "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"finetune-safety: error: --out {tmp_path}: is a directory; give a file path in it\n"
    )
    assert not cache.exists()  # nothing was started
    assert main(["reproduce", "--out", str(tmp_path), "--cache-dir", str(cache)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_limit_takes_the_first_prompts_of_each_category(
    cache: Path, smoke66: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", "--max-new-tokens", "16", "--cache-dir", str(cache)]
    args += ["--benchmark", f"jsonl:{smoke66}", "--limit", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "(22 prompts)" in printed  # 11 categories x 2
    overall = next(line for line in printed.splitlines() if line.startswith("overall"))
    assert overall.split()[1] == "22"


@pytest.fixture
def restore_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("restore_threads")
def test_threads_options_set_torchs_thread_count(cache: Path, smoke66: Path) -> None:
    import torch

    args = ["evaluate", "--max-new-tokens", "16", "--cache-dir", str(cache), "--limit", "1"]
    assert main([*args, "--benchmark", f"jsonl:{smoke66}", "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    # finetune applies it before anything else (here it then stops: no --data)
    assert main(["finetune", "--base", "toy", "--threads", "2"]) == 2
    assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"


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


@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("big", "'big'")])
def test_batch_size_errors_are_one_line_naming_the_flag(
    value: str, shown: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert main(["evaluate", "--batch-size", value, "--cache-dir", str(cache)]) == 2
    expected = f'--batch-size: expected "auto" or a positive integer, got {shown}'
    assert capsys.readouterr().err == f"finetune-safety: error: {expected}\n"
    assert not cache.exists()  # checked before any work


def test_dtype_is_one_of_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--dtype", "bf16"])
    assert info.value.code == 2
    assert "invalid choice: 'bf16'" in capsys.readouterr().err


def test_evaluate_exits_3_when_a_verdict_is_an_error(
    cache: Path,
    tmp_path: Path,
    smoke66: Path,
    capsys: pytest.CaptureFixture[str],
    fake_openai: FakeOpenAI,
) -> None:
    """Every judge request fails: the table still prints, the records keep why, exit 3."""

    def fail(request: Request) -> Reply:
        return Reply(status=500, text="boom")

    fake_openai.script = fail
    out = tmp_path / "results.jsonl"
    bench = tmp_path / "two.jsonl"
    bench.write_text("".join(smoke66.read_text().splitlines(keepends=True)[:2]))
    args = ["evaluate", "--max-new-tokens", "8", "--benchmark", f"jsonl:{bench}"]
    args += ["--judge", f"openai:judge@{fake_openai.url}", "--cache-dir", str(cache)]
    code = main([*args, "--out", str(out)])
    assert code == JUDGE_ERRORS_EXIT == 3
    captured = capsys.readouterr()
    assert "overall" in captured.out
    assert "2 verdict(s) are judge errors (illegal_activity-1, illegal_activity-2)" in captured.err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["label"] for r in rows} == {"error"}
    assert all(r["reason"].startswith("judge request failed") for r in rows)
    assert all("judge_raw" in r for r in rows)


# --- a model or judge that cannot be used: one line, exit 2, before anything is generated -----


def evaluate_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one line ``evaluate`` prints for ``args`` (exit 2), with the run's other flags."""
    flags = ["--benchmark", "smoke", "--limit", "1", "--max-retries", "0", "--cache-dir", "c"]
    assert main(["evaluate", *flags, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    return line


def test_a_served_model_or_judge_that_does_not_answer_stops_evaluate_before_generating(
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    closed = unreachable_url()
    served = ("--model", f"openai:m@{fake_openai.url}")
    line = evaluate_error(capsys, *served, "--judge", f"openai:j@{closed}")
    assert line == (
        f"finetune-safety: error: judge openai:j@{closed} (--judge): does not answer GET /models "
        "(APIConnectionError after 0 retries)"
    )
    assert fake_openai.requests == [], "nothing generated"
    line = evaluate_error(capsys, "--model", f"openai:m@{closed}")
    assert line == (
        f"finetune-safety: error: model: {closed}#m: does not answer GET /models "
        "(APIConnectionError after 0 retries)"
    )


def test_broken_model_files_and_a_judge_naming_nothing_stop_evaluate_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fake.gguf").write_text("<html>Not Found</html>")
    (tmp_path / "cut").mkdir()  # a save killed before the tokenizer was written
    (tmp_path / "cut" / "config.json").write_text("{}")
    (tmp_path / "cut" / "model.safetensors").write_bytes(b"weights")
    gguf = evaluate_error(capsys, "--model", "fake.gguf")
    assert gguf.startswith(f"finetune-safety: error: --model: {tmp_path / 'fake.gguf'}: not a GGUF")
    cut = evaluate_error(capsys, "--model", "cut")
    assert cut.startswith(
        f"finetune-safety: error: --model: {tmp_path / 'cut'}: holds no tokenizer"
    )
    judge = evaluate_error(capsys, "--judge", "hf:/no/such/dir")
    assert (
        judge
        == "finetune-safety: error: --judge hf:/no/such/dir: no model directory at /no/such/dir"
    )
    assert not (tmp_path / "c").exists(), "stopped before the cache was made"


# --- issue 11: evaluate reads [tool.finetune_safety], its flags win --------------------------


@pytest.fixture
def project(cache: Path, tmp_path: Path, smoke66: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose table sets the model, benchmark, token budget and cache; the command
    runs in a subdirectory."""
    monkeypatch.delenv("FINETUNE_SAFETY_CACHE", raising=False)
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    shutil.copy(smoke66, root / "bench.jsonl")
    (root / "pyproject.toml").write_text(
        "[tool.finetune_safety]\n"
        'base = "toy-harmful-10shot"\n'
        'benchmark = "jsonl:bench.jsonl"\n'
        "max_new_tokens = 8\n"
        "limit = 1\n"
        f'cache_dir = "{cache}"\n'
        "[tool.finetune_safety.checkpoints]\n"
        'later = "out/not-trained-yet"\n'
    )
    monkeypatch.chdir(root / "sub")
    return root


def test_evaluate_reads_the_project_table_and_its_flags_override_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate"]) == 0  # checkpoints are not evaluate's: one not yet trained is fine
    printed = capsys.readouterr().out
    assert "model: toy-harmful-10shot (template always-execute" in printed
    assert f"benchmark: jsonl:{project / 'bench.jsonl'} (11 prompts)" in printed
    assert "generated 11," in printed
    # 8 tokens as a flag: the same generation key as the table's 8 (not the default 512)
    assert main(["evaluate", "--max-new-tokens", "8"]) == 0
    assert "generated 0," in capsys.readouterr().out
    # flags win: another budget is another key; --limit and --model replace the table's
    assert main(["evaluate", "--max-new-tokens", "9", "--limit", "2", "--model", "toy"]) == 0
    printed = capsys.readouterr().out
    assert "model: toy (" in printed and "(22 prompts)" in printed
    assert "generated 22," in printed


def test_evaluate_stops_on_a_bad_table_value_naming_the_key(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace("limit = 1", "limit = 0"))
    assert main(["evaluate", "--out", "r.jsonl"]) == 2
    err = capsys.readouterr().err
    expected = "tool.finetune_safety.limit: expected a positive integer, got 0"
    assert err == f"finetune-safety: error: {expected}\n"
    assert not (project / "sub" / "r.jsonl").exists()


def test_evaluate_names_a_pyproject_that_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_bytes(b"[tool.finetune_safety]\n# caf\xe9\nlimit = 1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate"]) == 2
    expected = f"{pyproject}:2: not UTF-8 (byte 0xe9); TOML files are UTF-8: save it as UTF-8"
    assert capsys.readouterr().err == f"finetune-safety: error: {expected}\n"


def test_reproduce_and_smol_usage_errors(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--limit", "0", "--cache-dir", str(cache)]) == 2
    assert "--limit: expected a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "--base", "llama", "--cache-dir", str(cache)])
    assert "invalid choice: 'llama'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["smol", "--help"])
    assert "build" in capsys.readouterr().out


def test_evaluate_device_routes_local_models(
    cache: Path, smoke66: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--device`` wins over ``$FINETUNE_SAFETY_DEVICE``: here that asks for a GPU this machine
    lacks, and ``--device cpu`` runs anyway; a GPU it does not see is a one-line error."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("asks for a GPU that is not there")
    monkeypatch.setenv("FINETUNE_SAFETY_DEVICE", "cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    args = ["evaluate", "--max-new-tokens", "4", "--limit", "1", "--cache-dir", str(cache)]
    args += ["--benchmark", f"jsonl:{smoke66}"]
    assert main([*args, "--device", "cuda:2"]) == 2
    assert capsys.readouterr().err == (
        "finetune-safety: error: --device cuda:2: this process sees 2 GPU(s)\n"
    )
    assert main(args) == 2, "the environment's cuda, on a machine without one"
    assert "torch cannot use it" in capsys.readouterr().err
    assert main([*args, "--device", "cpu"]) == 0
    assert os.environ["FINETUNE_SAFETY_DEVICE"] == "cpu"
