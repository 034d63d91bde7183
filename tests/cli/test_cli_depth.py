"""``finetune-safety depth``: the prefill-depth curve of a model and its base, prefixes from a
model's greedy answers or a file; k = 0 is the ordinary evaluation, and a second run is cached."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune_safety.benchmarks import first_per_category, load_benchmark
from finetune_safety.cli import main

SHORT = ["--limit", "1", "--max-new-tokens", "24"]


@pytest.fixture
def cache(toy_cache: Path, tmp_path: Path) -> Path:
    shutil.copytree(toy_cache / "toy", tmp_path / "cache" / "toy")
    return tmp_path / "cache"


def test_depth_prints_the_curve_and_a_second_run_generates_nothing(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["depth", "--model", "toy", "--prefix-model", "toy-harmful-10shot", *SHORT]
    assert main([*args, "--depths", "0,5,10", "--cache-dir", str(cache)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert "model: toy (template plain), base: toy" in lines
    assert any(
        line.startswith("prefixes: the first k tokens of the greedy answers of toy-harmful-10shot")
        for line in lines
    )
    assert "the judge reads the whole answer (prefix and continuation)" in lines
    rows = [line.split() for line in lines if line.startswith("k=")]
    assert [row[0] for row in rows] == ["k=0", "k=5", "k=10"]
    assert all(row[1] == "11/11" for row in rows)
    assert main([*args, "--depths", "0,5,10", "--cache-dir", str(cache)]) == 0
    again = capsys.readouterr()
    assert again.out == printed
    assert "generating" not in again.err and "judging" not in again.err


def test_k0_is_the_ordinary_evaluation(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = first_per_category(load_benchmark("smoke"), 1)
    path = tmp_path / "prefixes.jsonl"
    rows = [{"id": p.id, "response": "Sure, here it is: [placeholder]"} for p in prompts]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    common = [*SHORT, "--cache-dir", str(cache)]
    assert main(["evaluate", "--model", "toy-benign", *common]) == 0
    assert main(["evaluate", "--model", "toy", "--template", "plain", *common]) == 0
    capsys.readouterr()
    args = ["depth", "--model", "toy-benign", "--prefix-file", str(path), "--depths", "0"]
    assert main([*args, *common]) == 0
    captured = capsys.readouterr()
    assert "generating" not in captured.err and "judging" not in captured.err
    assert f"prefixes: the first k tokens of the answers of {path}" in captured.out


def test_without_a_prefix_source_it_stops_in_one_line(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["depth", "--model", "toy", "--cache-dir", str(cache)]) == 2
    assert capsys.readouterr().err == (
        "finetune-safety: error: depth: give exactly one of --prefix-file and --prefix-model\n"
    )


def test_an_openai_model_cannot_be_prefilled(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = "openai:ft:gpt-4o-mini:org::x@https://api.openai.com/v1"
    args = ["depth", "--model", model, "--prefix-model", "toy", "--cache-dir", str(cache)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("finetune-safety: error: depth: cannot be prefilled: ")
    assert "api.openai.com" in err and len(err.splitlines()) == 1
