"""``prefill_depths``, ``prefix_file``, ``prefix_model`` and ``prefill_judge``: the depths of
``test_prefill_depth``, exactly one source of prefixes, what the judge reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.config import ConfigError, Overrides, SafetyConfig, from_table, load_config
from finetune_safety.config.checks import depth_list
from finetune_safety.models import ModelSpec


def pyproject(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f"[tool.finetune_safety]\n{body}", encoding="utf-8")
    return tmp_path


def test_off_by_default() -> None:
    config = SafetyConfig()
    assert config.prefill_depths == ()
    assert config.prefix_file is None and config.prefix_model is None
    assert config.prefill_judge == "whole"


def test_depths_and_a_prefix_model_from_the_table(tmp_path: Path) -> None:
    root = pyproject(
        tmp_path, 'prefill_depths = [20, 5, 10]\nprefix_model = "toy-harmful-10shot"\n'
    )
    config = load_config(root, Overrides())
    assert config.prefill_depths == (5, 10, 20)
    assert config.prefix_model == ModelSpec("toy-harmful-10shot")


def test_depths_from_the_option_and_a_prefix_file_relative_to_the_rootdir(tmp_path: Path) -> None:
    (tmp_path / "prefixes.jsonl").write_text("{}\n", encoding="utf-8")
    root = pyproject(tmp_path, 'prefix_file = "prefixes.jsonl"\nprefill_judge = "continuation"\n')
    config = load_config(root, Overrides(prefill_depths=depth_list("5,10")))
    assert config.prefill_depths == (5, 10)
    assert config.prefix_file == tmp_path / "prefixes.jsonl"
    assert config.prefill_judge == "continuation"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "expected [5, 10, ...], got []"),
        ([5, -1], "a depth is a whole number of tokens >= 0, got -1"),
        ([5, True], "a depth is a whole number of tokens >= 0, got True"),
        ([5, 5], "a depth is repeated in [5, 5]"),
    ],
)
def test_bad_depths_name_the_key(tmp_path: Path, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_table({"prefill_depths": value}, tmp_path)
    assert str(info.value) == f"tool.finetune_safety.prefill_depths: {message}"


def test_a_bad_option_value_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, Overrides(prefill_depths=depth_list("5,ten")))
    assert str(info.value) == (
        "--safety-prefill-depths: a depth is a whole number of tokens >= 0, got 'ten'"
    )


@pytest.mark.parametrize("both", [False, True], ids=["neither", "both"])
def test_depths_need_exactly_one_source(tmp_path: Path, both: bool) -> None:
    (tmp_path / "p.jsonl").write_text("{}\n", encoding="utf-8")
    sources = 'prefix_file = "p.jsonl"\nprefix_model = "toy"\n' if both else ""
    root = pyproject(tmp_path, f"prefill_depths = [5]\n{sources}")
    with pytest.raises(ConfigError) as info:
        load_config(root, Overrides())
    given = "both are set (prefix_file and prefix_model)" if both else "neither is set"
    assert str(info.value) == (
        "tool.finetune_safety.prefill_depths: the prefixes come from prefix_file or "
        f"prefix_model, exactly one of them; {given}"
    )


def test_a_source_without_depths_is_left_alone(tmp_path: Path) -> None:
    assert load_config(pyproject(tmp_path, 'prefix_model = "toy"\n'), Overrides()).prefix_model


def test_a_missing_prefix_file_and_an_unknown_judge_mode_name_their_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^tool.finetune_safety.prefix_file: no prefix file"):
        from_table({"prefix_file": "absent.jsonl"}, tmp_path)
    with pytest.raises(ConfigError, match=r"^tool.finetune_safety.prefill_judge: expected one"):
        from_table({"prefill_judge": "prefix"}, tmp_path)
