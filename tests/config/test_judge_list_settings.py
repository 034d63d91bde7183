"""``judge`` as one spec or a list (``--safety-judge`` and ``evaluate --judge`` repeated), and
``judge_combine`` (any | all), from every surface."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.config import ConfigError, Overrides, SafetyConfig, apply_overrides, from_table
from finetune_safety.config.schema import SETTING

TABLE = "tool.finetune_safety"


def test_a_list_of_judges_and_how_they_combine(tmp_path: Path) -> None:
    config = from_table({"judge": ["refusal", "refusal-paper"], "judge_combine": "all"}, tmp_path)
    assert config.judge == config.judges == ("refusal", "refusal-paper")
    assert config.judge_combine == "all"
    assert config.judge_named() == "refusal, refusal-paper (all)"


def test_one_spec_or_a_list_of_one_is_today_s_single_judge(tmp_path: Path) -> None:
    for value in ("refusal-paper", ["refusal-paper"]):
        config = from_table({"judge": value}, tmp_path)
        assert (config.judge, config.judges) == ("refusal-paper", ("refusal-paper",))
        assert config.judge_named() == "refusal-paper"
    assert SafetyConfig().judge_combine == SETTING["judge_combine"].default == "any"


def test_the_option_and_the_flag_repeat(tmp_path: Path) -> None:
    for flags in (False, True):
        overrides = Overrides(flags=flags, judge=["refusal", "refusal-paper"])
        config = apply_overrides(SafetyConfig(), overrides, tmp_path)
        assert config.judges == ("refusal", "refusal-paper")
    assert SETTING["judge"].argument()["action"] == "append"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], f"{TABLE}.judge: expected a judge spec or a non-empty list of them"),
        (["refusal", 3], f"{TABLE}.judge[1]: expected"),
        (["refusal", "refusal"], f"{TABLE}.judge: judge refusal is listed twice"),
        (["refusal", "openai:j@nota url"], f"{TABLE}.judge[1]: "),
    ],
)
def test_a_bad_list_names_the_key_and_the_item(value: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        from_table({"judge": value}, tmp_path)
    assert str(raised.value).startswith(message)


def test_a_judge_given_twice_on_the_command_line_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        apply_overrides(SafetyConfig(), Overrides(judge=["refusal", "refusal"]), tmp_path)
    assert str(raised.value) == "--safety-judge: judge refusal is listed twice"


@pytest.mark.parametrize("value", ["most", "ANY", 1, ["any"]])
def test_judge_combine_is_any_or_all(value: object, tmp_path: Path) -> None:
    message = f"expected one of ('any', 'all'), got {value!r}"
    with pytest.raises(ConfigError) as table:
        from_table({"judge_combine": value}, tmp_path)
    assert str(table.value) == f"{TABLE}.judge_combine: {message}"
    with pytest.raises(ConfigError) as flag:
        apply_overrides(SafetyConfig(), Overrides(flags=True, judge_combine=value), tmp_path)
    assert str(flag.value) == f"--judge-combine: {message}"
    assert SETTING["judge_combine"].option_name == "--safety-judge-combine"
