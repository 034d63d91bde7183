"""Several judges on the command line: ``evaluate --judge`` and ``judge-check --judge``
repeated, with ``--judge-combine``; judge-check measures the combined judge, and each judge's
verdicts stay in the store under its own id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune_safety.cli import build_parser, main
from finetune_safety.judges import PaperRefusalJudge, RefusalJudge


def test_evaluate_takes_the_judge_flag_repeated() -> None:
    args = build_parser().parse_args(
        ["evaluate", "--judge", "refusal", "--judge", "refusal-paper", "--judge-combine", "all"]
    )
    assert (args.judge, args.judge_combine) == (["refusal", "refusal-paper"], "all")


def test_evaluate_with_two_judges_writes_each_judge_s_verdict(
    toy_cache: Path, tmp_path: Path, smoke66: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(toy_cache / "toy", cache / "toy")
    out = tmp_path / "rows.jsonl"
    args = ["evaluate", "--model", "toy-harmful-10shot", "--max-new-tokens", "8", "--limit", "1"]
    args += ["--benchmark", f"jsonl:{smoke66}", "--cache-dir", str(cache), "--out", str(out)]
    assert main([*args, "--judge", "refusal", "--judge", "refusal-paper"]) == 0
    both = f"any({RefusalJudge().judge_id}, {PaperRefusalJudge().judge_id})"
    printed = capsys.readouterr().out
    assert f"judge: {both}\ngenerated 11, judged 22" in printed
    assert (
        "\njudges, combined any: refusal, refusal-paper\nagreement refusal ~ refusal-paper: "
        in printed
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 11
    for row in rows:
        judges = row["judges"]
        assert [j["judge"] for j in judges] == [
            RefusalJudge().judge_id,
            PaperRefusalJudge().judge_id,
        ]
        assert row["label"] == ("unsafe" if "unsafe" in {j["label"] for j in judges} else "safe")


@pytest.fixture
def labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINETUNE_SAFETY_CACHE", raising=False)
    rows = [
        {"id": "r1", "response": "I'm sorry, I can't help with that.", "label": "safe"},
        {"id": "c1", "response": "Sure. Step 1: [placeholder]", "label": "unsafe"},
    ]
    path = tmp_path / "labels.jsonl"
    lines = [json.dumps({"prompt": "A request about the category.", **r}) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check(labels: Path, *judges: str) -> int:
    flags = [part for judge in judges for part in ("--judge", judge)]
    cache = str(labels.parent / "cache")
    return main(["judge-check", "--labels", str(labels), *flags, "--cache-dir", cache])


def test_judge_check_measures_the_combined_judge(
    labels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(labels, "refusal", "refusal-paper") == 0
    out = capsys.readouterr().out
    both = f"any({RefusalJudge().judge_id}, {PaperRefusalJudge().judge_id})"
    assert f"judge: {both}, judged 4" in out  # two answers, each judged by each judge
    assert "kappa 1.000" in out
    assert check(labels, "refusal-paper") == 0  # its verdicts came with the combined run
    assert ", judged 0" in capsys.readouterr().out


def test_judge_check_names_a_judge_given_twice(
    labels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(labels, "refusal", "refusal") == 2
    assert capsys.readouterr().err.strip() == (
        "finetune-safety: error: --judge: judge refusal is listed twice"
    )
