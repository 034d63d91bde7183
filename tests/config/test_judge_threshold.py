"""``judge_threshold``: a probability in (0, 1), from the table, ``--safety-judge-threshold`` or
``evaluate --judge-threshold``, handed to the judge's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.config import ConfigError, Overrides, SafetyConfig, apply_overrides, from_table
from finetune_safety.config.schema import SETTING


def test_the_default_is_one_half_and_reaches_the_judge(tmp_path: Path) -> None:
    assert SETTING["judge_threshold"].default == SafetyConfig().judge_threshold == 0.5
    assert SETTING["judge_threshold"].option_name == "--safety-judge-threshold"
    assert SETTING["judge_threshold"].flag_name == "--judge-threshold"
    config = from_table({"judge_threshold": 0.8}, tmp_path)
    assert config.judge_settings(tmp_path, lambda path: None).threshold == 0.8


def test_the_command_line_wins(tmp_path: Path) -> None:
    config = apply_overrides(
        from_table({"judge_threshold": 0.8}, tmp_path), Overrides(judge_threshold=0.3), tmp_path
    )
    assert config.judge_threshold == 0.3


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, 0.0, 1.0, True, "0.5"])
def test_only_a_probability_strictly_between_0_and_1(value: object, tmp_path: Path) -> None:
    message = f"expected a probability between 0 and 1, got {value!r}"
    with pytest.raises(ConfigError) as table:
        from_table({"judge_threshold": value}, tmp_path)
    assert str(table.value) == f"tool.finetune_safety.judge_threshold: {message}"
    with pytest.raises(ConfigError) as option:
        apply_overrides(SafetyConfig(), Overrides(judge_threshold=value), tmp_path)
    assert str(option.value) == f"--safety-judge-threshold: {message}"
    with pytest.raises(ConfigError) as flag:
        apply_overrides(SafetyConfig(), Overrides(flags=True, judge_threshold=value), tmp_path)
    assert str(flag.value) == f"--judge-threshold: {message}"
