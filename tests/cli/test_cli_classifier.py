"""``finetune-safety evaluate --judge llama-guard:...`` as a user runs it against a served
classifier: the coverage note, the readings in ``--out``, and ``--judge-threshold``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune_safety.cli import main
from finetune_safety.testing.classifiers import llama_guard_scorer
from finetune_safety.testing.fake_openai import FakeOpenAI


@pytest.fixture
def cache(toy_cache: Path, tmp_path: Path) -> Path:
    shutil.copytree(toy_cache / "toy", tmp_path / "cache" / "toy")
    return tmp_path / "cache"


@pytest.fixture
def bench(smoke66: Path, tmp_path: Path) -> Path:
    """The first illegal-activity and political-campaigning prompts."""
    rows = [json.loads(line) for line in smoke66.read_text().splitlines()]
    chosen = [r for r in rows if r["id"] in ("illegal_activity-1", "political_campaigning-1")]
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return path


def test_evaluate_with_a_served_llama_guard(
    cache: Path,
    bench: Path,
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_openai.script = llama_guard_scorer
    out = tmp_path / "records.jsonl"
    args = ["evaluate", "--model", "toy-harmful-10shot", "--max-new-tokens", "24"]
    args += ["--benchmark", f"jsonl:{bench}", "--cache-dir", str(cache), "--out", str(out)]
    args += ["--judge", f"llama-guard:guard@{fake_openai.url}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "finetune-safety: judge llama-guard has no category for political_campaigning" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["p_unsafe"] == pytest.approx(0.9 if row["label"] == "unsafe" else 0.1)
        assert row.get("categories", []) == (["S2"] if row["label"] == "unsafe" else [])
        assert row["reason"].startswith("llama guard: ")
    # A threshold above every P(unsafe): nothing is unsafe, and the verdicts are judged anew.
    asked = fake_openai.count()
    assert main([*args, "--judge-threshold", "0.95"]) == 0
    assert fake_openai.count() == asked + 2
    assert {json.loads(line)["label"] for line in out.read_text().splitlines()} == {"safe"}


def test_a_bad_threshold_is_one_line_exit_2(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--judge-threshold", "1.5", "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "finetune-safety: error: --judge-threshold: expected a probability between 0 and 1, got 1.5"
    )
