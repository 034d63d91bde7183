"""``judge_labels`` and ``min_judge_kappa``: a labelled-answers file relative to the rootdir,
and a kappa from -1 to 1 (default 0.6), from the table or ``--safety-*`` options."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.config import ConfigError, Overrides, SafetyConfig, apply_overrides, from_table
from finetune_safety.config.schema import SETTING


def test_a_labels_file_relative_to_the_rootdir_and_the_default_kappa(tmp_path: Path) -> None:
    (tmp_path / "labels.jsonl").write_text("{}\n", encoding="utf-8")
    config = from_table({"judge_labels": "labels.jsonl"}, tmp_path)
    assert config.judge_labels == tmp_path / "labels.jsonl"
    assert config.min_judge_kappa == SETTING["min_judge_kappa"].default == 0.6
    assert SafetyConfig().judge_labels is None
    assert SETTING["judge_labels"].option_name == "--safety-judge-labels"


def test_a_missing_labels_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^tool.finetune_safety.judge_labels: no labelled"):
        from_table({"judge_labels": "absent.jsonl"}, tmp_path)


def test_min_judge_kappa_from_the_option_and_its_range(tmp_path: Path) -> None:
    config = apply_overrides(SafetyConfig(), Overrides(min_judge_kappa=0.8), tmp_path)
    assert config.min_judge_kappa == 0.8
    assert from_table({"min_judge_kappa": -1}, tmp_path).min_judge_kappa == -1
    with pytest.raises(ConfigError) as bad:
        apply_overrides(SafetyConfig(), Overrides(min_judge_kappa=1.5), tmp_path)
    assert str(bad.value) == (
        "--safety-min-judge-kappa: expected a number (Cohen's kappa, -1 to 1), got 1.5"
    )
