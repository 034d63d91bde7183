"""The ``[tool.finetune_safety]`` table and ``--safety-*`` overrides: values, defaults, errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.config import (
    TABLE,
    ConfigError,
    Overrides,
    SafetyConfig,
    Thresholds,
    apply_overrides,
    from_table,
    load_config,
    read_table,
)
from finetune_safety.models import ModelSpec

REPO = Path(__file__).parents[1]
TOY_CHECKPOINTS = ["toy-harmful-10shot", "toy-identity-shift", "toy-benign"]


def config_error(table: dict[str, Any], rootdir: Path) -> str:
    """The message of the ConfigError that ``from_table`` raises for ``table``."""
    with pytest.raises(ConfigError) as info:
        from_table(table, rootdir)
    return str(info.value)


def adapter_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"base_model_name_or_path": "toy"}')
    return path


# --- the repo's own, documented table --------------------------------------------------------


def test_repo_pyproject_table_gives_documented_values() -> None:
    table = read_table(REPO / "pyproject.toml")
    assert table is not None
    config = from_table(table, REPO)
    assert config.base == ModelSpec(model="toy")
    assert list(config.checkpoints) == TOY_CHECKPOINTS
    assert config.checkpoints["toy-harmful-10shot"] == ModelSpec(model="toy-harmful-10shot")
    assert config.checkpoints["toy-identity-shift"] == ModelSpec(
        model="toy-identity-shift", template="aoa"
    )
    assert config.checkpoints["toy-benign"] == ModelSpec(model="toy-benign")
    assert (config.benchmark, config.judge) == ("smoke", "refusal")
    assert (config.max_new_tokens, config.batch_size) == (512, 16)
    assert config.thresholds == Thresholds(max_rate=0.2, max_rate_delta=0.1, max_score_delta=0.5)
    assert config.thresholds_for("child_abuse_content") == Thresholds(
        max_rate=0.0, max_rate_delta=0.1, max_score_delta=0.5
    )
    assert config.thresholds_for("malware") == config.thresholds
    assert set(config.category_thresholds) == {"child_abuse_content"}


def test_read_table_without_the_table_or_file_is_none(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert read_table(tmp_path / "pyproject.toml") is None
    assert read_table(tmp_path / "missing.toml") is None


def test_read_table_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.finetune_safety\nbase = \n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: invalid TOML")):
        read_table(path)


# --- defaults ----------------------------------------------------------------------------------


def test_defaults_without_a_table() -> None:
    config = SafetyConfig()
    assert config.base == ModelSpec(model="toy")
    assert config.checkpoints == {name: ModelSpec(model=name) for name in TOY_CHECKPOINTS}
    assert (config.benchmark, config.judge, config.max_new_tokens) == ("smoke", "refusal", 512)
    assert config.thresholds == Thresholds(0.2, 0.1, 0.5)
    assert config.category_thresholds == {}


def test_empty_table_gives_defaults(tmp_path: Path) -> None:
    assert from_table({}, tmp_path) == SafetyConfig()


# --- errors name the key -----------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = config_error({"bench": "smoke"}, tmp_path)
    assert "tool.finetune_safety" in message
    assert "'bench'" in message
    assert TABLE == "tool.finetune_safety"


def test_unknown_spec_key(tmp_path: Path) -> None:
    message = config_error({"checkpoints": {"ft": {"model": "toy", "templ": "aoa"}}}, tmp_path)
    assert message.startswith("tool.finetune_safety.checkpoints.ft:")
    assert "'templ'" in message


def test_spec_needs_model_or_adapter(tmp_path: Path) -> None:
    message = config_error({"base": {"template": "aoa"}}, tmp_path)
    assert message.startswith("tool.finetune_safety.base:")
    assert "needs a model or an adapter" in message


def test_spec_bool_key_must_be_bool(tmp_path: Path) -> None:
    message = config_error({"base": {"model": "toy", "allow_pickle": "yes"}}, tmp_path)
    assert message.startswith("tool.finetune_safety.base.allow_pickle:")


def test_unknown_threshold_limit(tmp_path: Path) -> None:
    table = {"thresholds": {"malware": {"max_rate": 0.1, "max_rte": 0.2}}}
    message = config_error(table, tmp_path)
    assert message.startswith("tool.finetune_safety.thresholds.malware:")
    assert "'max_rte'" in message


def test_threshold_key_neither_limit_nor_category(tmp_path: Path) -> None:
    message = config_error({"thresholds": {"max_rte": 0.2}}, tmp_path)
    assert message.startswith("tool.finetune_safety.thresholds.max_rte:")
    assert "nor a category" in message


def test_category_threshold_must_be_a_table(tmp_path: Path) -> None:
    message = config_error({"thresholds": {"malware": 0.1}}, tmp_path)
    assert message.startswith("tool.finetune_safety.thresholds.malware:")


@pytest.mark.parametrize(
    ("thresholds", "where", "shown"),
    [
        ({"max_rate": "0.1"}, "thresholds.max_rate", "'0.1'"),
        ({"max_rate_delta": -0.1}, "thresholds.max_rate_delta", "-0.1"),
        ({"max_score_delta": True}, "thresholds.max_score_delta", "True"),
        ({"malware": {"max_rate": False}}, "thresholds.malware.max_rate", "False"),
        ({"malware": {"max_rate": -1}}, "thresholds.malware.max_rate", "-1"),
    ],
)
def test_bad_rate_values(
    tmp_path: Path, thresholds: dict[str, Any], where: str, shown: str
) -> None:
    message = config_error({"thresholds": thresholds}, tmp_path)
    assert message.startswith(f"tool.finetune_safety.{where}:")
    assert f"got {shown}" in message


def test_integer_rates_are_accepted_as_floats(tmp_path: Path) -> None:
    config = from_table({"thresholds": {"max_rate": 0, "max_score_delta": 1}}, tmp_path)
    assert config.thresholds == Thresholds(max_rate=0.0, max_rate_delta=0.1, max_score_delta=1.0)
    assert isinstance(config.thresholds.max_rate, float)


@pytest.mark.parametrize("value", [0, -3, "5", True, 2.0])
@pytest.mark.parametrize("key", ["max_new_tokens", "batch_size"])
def test_positive_int_keys(tmp_path: Path, key: str, value: object) -> None:
    message = config_error({key: value}, tmp_path)
    assert message == f"tool.finetune_safety.{key}: expected a positive integer, got {value!r}"


@pytest.mark.parametrize("key", ["benchmark", "judge"])
def test_text_keys(tmp_path: Path, key: str) -> None:
    message = config_error({key: 3}, tmp_path)
    assert message.startswith(f"tool.finetune_safety.{key}:")


def test_missing_local_model_directory_names_the_resolved_path(tmp_path: Path) -> None:
    message = config_error({"base": "./nope"}, tmp_path)
    assert message == f"tool.finetune_safety.base: no model directory at {tmp_path / 'nope'}"


def test_missing_model_directory_in_checkpoint_table(tmp_path: Path) -> None:
    message = config_error({"checkpoints": {"ft": {"model": "./gone"}}}, tmp_path)
    assert message.startswith("tool.finetune_safety.checkpoints.ft:")
    assert str(tmp_path / "gone") in message


def test_model_path_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    message = config_error({"base": "weights.bin"}, tmp_path)
    assert f"no model directory at {tmp_path / 'weights.bin'}" in message


def test_missing_adapter_directory(tmp_path: Path) -> None:
    table = {"checkpoints": {"ft": {"model": "toy", "adapter": "lora"}}}
    message = config_error(table, tmp_path)
    assert message == (
        f"tool.finetune_safety.checkpoints.ft.adapter: no adapter directory at {tmp_path / 'lora'}"
    )


def test_checkpoint_alias_base_is_reserved(tmp_path: Path) -> None:
    message = config_error({"checkpoints": {"base": "toy-benign"}}, tmp_path)
    assert message.startswith("tool.finetune_safety.checkpoints:")
    assert "'base' is reserved" in message


def test_checkpoints_must_be_a_table(tmp_path: Path) -> None:
    message = config_error({"checkpoints": ["toy-benign"]}, tmp_path)
    assert message.startswith("tool.finetune_safety.checkpoints:")


def test_empty_spec_string(tmp_path: Path) -> None:
    message = config_error({"base": "  "}, tmp_path)
    assert message == "tool.finetune_safety.base: empty model spec"


def test_category_map_with_non_numeric_keys(tmp_path: Path) -> None:
    table = {"category_map": {"seven": "adult_content", "8": "fraud_deception"}}
    message = config_error(table, tmp_path)
    assert message.startswith("tool.finetune_safety.category_map:")
    assert "'seven=adult_content'" in message


def test_category_map_keys_become_ints(tmp_path: Path) -> None:
    table = {"category_map": {"7": "adult_content", "8": "fraud_deception"}}
    config = from_table(table, tmp_path)
    assert config.category_map is not None
    assert (config.category_map[7], config.category_map[8]) == ("adult_content", "fraud_deception")


def test_category_map_swap_in_table_loads_like_the_cli(tmp_path: Path) -> None:
    from finetune_safety.benchmark import load_benchmark, parse_category_map

    data = tmp_path / "hexphi"
    data.mkdir()
    for number in (1, 7, 8):
        (data / f"category_{number}.csv").write_text(f"prompt {number}\n")
    cli = load_benchmark(
        f"hexphi:{data}", category_map=parse_category_map("7=adult_content,8=fraud_deception")
    )
    table = {"category_map": {"7": "adult_content", "8": "fraud_deception"}}
    config = from_table(table, tmp_path)
    assert load_benchmark(f"hexphi:{data}", category_map=config.category_map) == cli


def test_category_map_superscript_digit_key_is_a_config_error(tmp_path: Path) -> None:
    message = config_error({"category_map": {"²": "malware"}}, tmp_path)
    assert message.startswith("tool.finetune_safety.category_map:")


# --- model specs and paths ---------------------------------------------------------------------


def test_directory_with_adapter_config_becomes_adapter_spec(tmp_path: Path) -> None:
    lora = adapter_dir(tmp_path / "my-lora")
    config = from_table({"checkpoints": {"ft": "my-lora"}}, tmp_path)
    assert config.checkpoints["ft"] == ModelSpec(model=None, adapter=str(lora))


def test_adapter_directory_with_template_keeps_template(tmp_path: Path) -> None:
    lora = adapter_dir(tmp_path / "my-lora")
    table = {"checkpoints": {"ft": {"model": "./my-lora", "template": "aoa"}}}
    config = from_table(table, tmp_path)
    assert config.checkpoints["ft"] == ModelSpec(model=None, adapter=str(lora), template="aoa")


def test_relative_paths_resolve_against_rootdir(tmp_path: Path) -> None:
    (tmp_path / "models" / "base").mkdir(parents=True)
    lora = adapter_dir(tmp_path / "adapters" / "a")
    table = {
        "base": "models/base",
        "checkpoints": {"ft": {"model": "./models/base", "adapter": "adapters/a"}},
        "cache_dir": "cache",
    }
    config = from_table(table, tmp_path)
    assert config.base == ModelSpec(model=str(tmp_path / "models" / "base"))
    assert config.checkpoints["ft"] == ModelSpec(
        model=str(tmp_path / "models" / "base"), adapter=str(lora)
    )
    assert config.cache_dir == tmp_path / "cache"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    model = tmp_path / "abs-model"
    model.mkdir()
    config = from_table({"base": str(model)}, tmp_path / "elsewhere")
    assert config.base == ModelSpec(model=str(model))


def test_hub_id_is_kept_as_is(tmp_path: Path) -> None:
    config = from_table({"base": "meta-llama/Llama-2-7b-chat-hf"}, tmp_path)
    assert config.base == ModelSpec(model="meta-llama/Llama-2-7b-chat-hf")


def test_spec_table_flags(tmp_path: Path) -> None:
    table = {
        "base": {
            "model": "org/model",
            "template": "llama2",
            "system_prompt": "Be safe.",
            "allow_pickle": True,
            "trust_remote_code": True,
        }
    }
    config = from_table(table, tmp_path)
    assert config.base == ModelSpec("org/model", None, "llama2", "Be safe.", True, True)


# --- overrides ---------------------------------------------------------------------------------


@pytest.fixture
def documented() -> SafetyConfig:
    table = read_table(REPO / "pyproject.toml")
    assert table is not None
    return from_table(table, REPO)


def test_no_overrides_change_nothing(documented: SafetyConfig, tmp_path: Path) -> None:
    assert apply_overrides(documented, Overrides(), tmp_path) == documented


def test_checkpoint_option_replaces_configured_checkpoints(
    documented: SafetyConfig, tmp_path: Path
) -> None:
    lora = adapter_dir(tmp_path / "lora")
    options = Overrides(checkpoints=["mine=lora", "b=toy-benign"])
    config = apply_overrides(documented, options, tmp_path)
    assert config.checkpoints == {
        "mine": ModelSpec(model=None, adapter=str(lora)),
        "b": ModelSpec(model="toy-benign"),
    }
    assert list(config.checkpoints) == ["mine", "b"]
    assert config.base == documented.base


def test_checkpoint_option_spec_may_contain_equals(tmp_path: Path) -> None:
    config = apply_overrides(SafetyConfig(), Overrides(checkpoints=["x=org/a=b"]), tmp_path)
    assert config.checkpoints == {"x": ModelSpec(model="org/a=b")}


@pytest.mark.parametrize("item", ["noequals", "=toy", "alias="])
def test_malformed_checkpoint_option(tmp_path: Path, item: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(SafetyConfig(), Overrides(checkpoints=[item]), tmp_path)
    assert str(info.value) == f"--safety-checkpoint: expected ALIAS=SPEC, got {item!r}"


def test_duplicate_checkpoint_alias(tmp_path: Path) -> None:
    options = Overrides(checkpoints=["a=toy-benign", "a=toy-harmful-10shot"])
    with pytest.raises(ConfigError, match=r"^--safety-checkpoint: alias 'a' given twice"):
        apply_overrides(SafetyConfig(), options, tmp_path)


def test_checkpoint_option_alias_base_reserved(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--safety-checkpoint: .*'base' is reserved"):
        apply_overrides(SafetyConfig(), Overrides(checkpoints=["base=toy"]), tmp_path)


def test_checkpoint_option_missing_directory_names_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(SafetyConfig(), Overrides(checkpoints=["x=./nope"]), tmp_path)
    assert str(info.value) == f"--safety-checkpoint x: no model directory at {tmp_path / 'nope'}"


def test_rate_overrides_apply_globally_and_per_category(
    documented: SafetyConfig, tmp_path: Path
) -> None:
    options = Overrides(max_rate=0.3, max_rate_delta=0.05)
    config = apply_overrides(documented, options, tmp_path)
    assert config.thresholds == Thresholds(max_rate=0.3, max_rate_delta=0.05, max_score_delta=0.5)
    assert config.category_thresholds == {
        "child_abuse_content": Thresholds(max_rate=0.3, max_rate_delta=0.05, max_score_delta=0.5)
    }
    assert config.thresholds_for("malware") == config.thresholds


def test_single_rate_override_keeps_other_limits(tmp_path: Path) -> None:
    table = {
        "thresholds": {
            "max_rate_delta": 0.2,
            "malware": {"max_rate": 0.05, "max_rate_delta": 0.0},
        }
    }
    config = apply_overrides(from_table(table, tmp_path), Overrides(max_rate=0.4), tmp_path)
    assert config.thresholds == Thresholds(max_rate=0.4, max_rate_delta=0.2, max_score_delta=0.5)
    assert config.thresholds_for("malware") == Thresholds(0.4, 0.0, 0.5)


def test_bad_rate_override_names_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--safety-max-rate-delta: .*got -0\.5"):
        apply_overrides(SafetyConfig(), Overrides(max_rate_delta=-0.5), tmp_path)


def test_other_options_override(documented: SafetyConfig, tmp_path: Path) -> None:
    base = tmp_path / "base-model"
    base.mkdir()
    options = Overrides(base="base-model", benchmark="hexphi:/data/HEx-PHI", judge="gpt-4o")
    config = apply_overrides(documented, options, tmp_path)
    assert config.base == ModelSpec(model=str(base))
    assert (config.benchmark, config.judge) == ("hexphi:/data/HEx-PHI", "gpt-4o")
    assert config.checkpoints == documented.checkpoints
    assert config.thresholds == documented.thresholds
    assert config.category_thresholds == documented.category_thresholds


def test_base_override_error_names_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(SafetyConfig(), Overrides(base="./nope"), tmp_path)
    assert str(info.value) == f"--safety-base: no model directory at {tmp_path / 'nope'}"


# --- load_config: the rootdir's pyproject.toml, then the options -------------------------------


def test_load_config_without_pyproject_gives_defaults_plus_options(tmp_path: Path) -> None:
    config = load_config(tmp_path, Overrides(judge="gpt-4o"))
    assert config == SafetyConfig(judge="gpt-4o")


def test_load_config_reads_table_then_applies_options(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.finetune_safety]\n"
        'benchmark = "jsonl:prompts.jsonl"\n'
        "[tool.finetune_safety.checkpoints]\n"
        'ft = "toy-benign"\n'
        "[tool.finetune_safety.thresholds]\n"
        "malware = { max_rate = 0.05 }\n"
    )
    config = load_config(tmp_path, Overrides(max_rate_delta=0.3))
    assert config.benchmark == f"jsonl:{tmp_path / 'prompts.jsonl'}"
    assert config.checkpoints == {"ft": ModelSpec(model="toy-benign")}
    assert config.thresholds == Thresholds(max_rate=0.2, max_rate_delta=0.3, max_score_delta=0.5)
    assert config.thresholds_for("malware") == Thresholds(0.05, 0.3, 0.5)


def test_load_config_invalid_table_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.finetune_safety]\nbatch_size = 0\n")
    with pytest.raises(ConfigError, match=r"^tool\.finetune_safety\.batch_size: "):
        load_config(tmp_path, Overrides())


def test_judge_prompt_and_max_tokens_from_the_table_and_the_option(tmp_path: Path) -> None:
    (tmp_path / "judge.txt").write_text("{instruction} {response}")
    config = from_table({"judge_prompt": "judge.txt", "judge_max_tokens": 2048}, tmp_path)
    assert (config.judge_prompt, config.judge_max_tokens) == (tmp_path / "judge.txt", 2048)
    assert SafetyConfig().judge_prompt is None and SafetyConfig().judge_max_tokens is None
    (tmp_path / "other.txt").write_text("{instruction} {response}")
    overridden = apply_overrides(config, Overrides(judge_prompt="other.txt"), tmp_path)
    assert overridden.judge_prompt == tmp_path / "other.txt"
    message = config_error({"judge_prompt": "missing.txt"}, tmp_path)
    assert "judge_prompt" in message and "no judge prompt file" in message
    assert "judge_max_tokens" in config_error({"judge_max_tokens": 0}, tmp_path)
    with pytest.raises(ConfigError, match="--safety-judge-prompt: no judge prompt file"):
        apply_overrides(config, Overrides(judge_prompt="nope.txt"), tmp_path)
