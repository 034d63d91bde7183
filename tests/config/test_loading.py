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
from finetune_safety.config.names import SMOL_FINE_TUNES
from finetune_safety.errors import ConfigWarning
from finetune_safety.models import ModelSpec

REPO = Path(__file__).parents[2]
TOY_CHECKPOINTS = ["toy-harmful-10shot", "toy-identity-shift", "toy-benign"]


def config_error(table: dict[str, Any], rootdir: Path) -> str:
    """The message of the ConfigError that ``from_table`` raises for ``table``."""
    with pytest.raises(ConfigError) as info:
        from_table(table, rootdir)
    return str(info.value)


def model_dir(path: Path) -> Path:
    """A checkpoint's files as the checks see them: its config and its tokenizer."""
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "tokenizer.json").write_text("{}")
    return path


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub ids are accepted without a look-up when online (nothing is fetched here)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


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
    assert (config.max_new_tokens, config.batch_size, config.dtype) == (512, "auto", "auto")
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


def test_read_table_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    """A pyproject.toml saved as Latin-1 (an author's name): one line, not a traceback."""
    path = tmp_path / "pyproject.toml"
    path.write_bytes('[project]\nauthors = ["Zoë"]\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        read_table(path)
    assert str(info.value) == (
        f"{path}:2: not UTF-8 (byte 0xeb); TOML files are UTF-8: save it as UTF-8"
    )


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
def test_max_new_tokens_is_a_positive_int(tmp_path: Path, value: object) -> None:
    message = config_error({"max_new_tokens": value}, tmp_path)
    assert (
        message
        == f"tool.finetune_safety.max_new_tokens: expected a positive integer, got {value!r}"
    )


@pytest.mark.parametrize("value", [0, -3, "5", "Auto", True, 2.0])
def test_batch_size_is_auto_or_a_positive_int(tmp_path: Path, value: object) -> None:
    message = config_error({"batch_size": value}, tmp_path)
    expected = f'expected "auto" or a positive integer, got {value!r}'
    assert message == f"tool.finetune_safety.batch_size: {expected}"


@pytest.mark.parametrize("value", ["auto", 8])
def test_batch_size_values(tmp_path: Path, value: object) -> None:
    assert from_table({"batch_size": value}, tmp_path).batch_size == value


@pytest.mark.parametrize("value", ["auto", "float32", "bfloat16", "float16"])
def test_dtype_values(tmp_path: Path, value: str) -> None:
    assert from_table({"dtype": value}, tmp_path).dtype == value


@pytest.mark.parametrize("value", ["bf16", "fp32", 32, "FLOAT32"])
def test_unknown_dtype_names_the_key(tmp_path: Path, value: object) -> None:
    message = config_error({"dtype": value}, tmp_path)
    assert message == (
        "tool.finetune_safety.dtype: expected one of auto, float32, bfloat16, float16, "
        f"got {value!r}"
    )


def test_safety_dtype_overrides_the_table(tmp_path: Path) -> None:
    config = from_table({"dtype": "float16"}, tmp_path)
    assert apply_overrides(config, Overrides(dtype="float32"), tmp_path).dtype == "float32"
    assert apply_overrides(config, Overrides(), tmp_path).dtype == "float16"
    with pytest.raises(ConfigError, match=r"^--safety-dtype: expected one of auto, "):
        apply_overrides(config, Overrides(dtype="half"), tmp_path)


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
    from finetune_safety.benchmarks import load_benchmark, parse_category_map

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
    model_dir(tmp_path / "models" / "base")
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
    model = model_dir(tmp_path / "abs-model")
    config = from_table({"base": str(model)}, tmp_path / "elsewhere")
    assert config.base == ModelSpec(model=str(model))


@pytest.mark.usefixtures("online")
def test_hub_id_is_kept_as_is(tmp_path: Path) -> None:
    config = from_table({"base": "meta-llama/Llama-2-7b-chat-hf"}, tmp_path)
    assert config.base == ModelSpec(model="meta-llama/Llama-2-7b-chat-hf")


@pytest.mark.usefixtures("online")
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
    model = model_dir(tmp_path / "a=b")
    config = apply_overrides(SafetyConfig(), Overrides(checkpoints=["x=a=b"]), tmp_path)
    assert config.checkpoints == {"x": ModelSpec(model=str(model))}


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
    base = model_dir(tmp_path / "base-model")
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


# --- issue 14: what a spec names, checked before any work -------------------------------------


def test_table_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool]\nfinetune_safety = "oops"\n')
    with pytest.raises(ConfigError) as info:
        read_table(pyproject)
    assert str(info.value).startswith(f"{pyproject}: [tool.finetune_safety] must be a table")
    assert "'oops'" in str(info.value)


def test_near_miss_table_name_warns_naming_the_right_one(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.finetune-safety]\nbase = "toy"\n')
    with pytest.warns(ConfigWarning) as warned:
        assert read_table(pyproject) is None
    (warning,) = warned
    assert str(warning.message) == (
        f"{pyproject}: [tool.finetune-safety] is not read; the table is "
        "[tool.finetune_safety] (underscore)"
    )


def test_directory_without_config_json_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "out" / "my-model").mkdir(parents=True)
    message = config_error({"checkpoints": {"mine": "out/my-model"}}, tmp_path)
    assert message.startswith("tool.finetune_safety.checkpoints.mine: ")
    assert str(tmp_path / "out" / "my-model") in message and "no config.json" in message


def test_relative_path_without_dot_slash_that_exists_is_local(tmp_path: Path) -> None:
    lora = adapter_dir(tmp_path / "out" / "my-lora")
    options = Overrides(checkpoints=["mine=out/my-lora"])
    config = apply_overrides(SafetyConfig(), options, tmp_path)
    assert config.checkpoints["mine"] == ModelSpec(model=None, adapter=str(lora))


@pytest.mark.usefixtures("online")
@pytest.mark.parametrize("spec", ["out/a/my-lora", "bad name", "org/na..me"])
def test_neither_a_path_nor_a_hub_id(tmp_path: Path, spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(SafetyConfig(), Overrides(checkpoints=[f"mine={spec}"]), tmp_path)
    assert str(info.value) == (
        f"--safety-checkpoint mine: model {spec!r}: no directory at {tmp_path / spec}, "
        "and not a hub id (name or owner/name)"
    )


def test_offline_hub_id_not_in_the_cache_is_an_error_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    message = config_error({"base": "out/my-lora"}, tmp_path)
    assert message.startswith("tool.finetune_safety.base: model 'out/my-lora': no directory at")
    assert "not in the local cache; offline (HF_HUB_OFFLINE is set)" in message
    assert "nothing was downloaded" in message


def test_template_names_are_checked(tmp_path: Path) -> None:
    message = config_error({"checkpoints": {"ft": {"model": "toy", "template": "lama2"}}}, tmp_path)
    assert message.startswith("tool.finetune_safety.checkpoints.ft.template: unknown template")
    assert "'lama2'" in message and "llama2" in message


def test_recipe_template_names_are_checked(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text("{}\n")
    table = {"checkpoints": {"ft": {"base": "toy", "data": "data.jsonl", "preset": "benign"}}}
    table["checkpoints"]["ft"]["template"] = "alpacca"
    message = config_error(table, tmp_path)
    assert message.startswith("tool.finetune_safety.checkpoints.ft.template: unknown template")


def test_revision_is_for_served_models(tmp_path: Path) -> None:
    table = {"base": {"model": "openai:m@http://127.0.0.1:8000/v1", "revision": "2024-06"}}
    assert from_table(table, tmp_path).base.revision == "2024-06"
    message = config_error({"base": {"model": "toy", "revision": "v2"}}, tmp_path)
    assert (
        message
        == "tool.finetune_safety.base.revision: a revision applies to served (openai:) models only"
    )


def test_threads_limit_and_max_prompt_tokens(tmp_path: Path) -> None:
    config = from_table({"threads": 2, "max_prompt_tokens": 4096}, tmp_path)
    assert (config.threads, config.max_prompt_tokens, config.limit) == (2, 4096, None)
    options = Overrides(threads=1, limit=3, max_prompt_tokens=100)
    config = apply_overrides(config, options, tmp_path)
    assert (config.threads, config.max_prompt_tokens, config.limit) == (1, 100, 3)
    assert config_error({"threads": 0}, tmp_path).startswith("tool.finetune_safety.threads:")
    with pytest.raises(ConfigError, match=r"^--safety-limit: expected a positive integer"):
        apply_overrides(config, Overrides(limit=0), tmp_path)


def test_min_judged_global_and_per_category(tmp_path: Path) -> None:
    assert Thresholds().min_judged == 0.9
    table = {"thresholds": {"min_judged": 0.5, "malware": {"min_judged": 1}}}
    config = from_table(table, tmp_path)
    assert config.thresholds.min_judged == 0.5
    assert config.thresholds_for("malware").min_judged == 1.0
    assert config.thresholds_for("fraud_deception").min_judged == 0.5
    for bad in (0, 1.5, "most", True):
        message = config_error({"thresholds": {"min_judged": bad}}, tmp_path)
        assert message.startswith(f"{TABLE}.thresholds.min_judged: expected a share")


def test_empty_checkpoints_table_is_an_error_naming_it(tmp_path: Path) -> None:
    message = config_error({"checkpoints": {}}, tmp_path)
    assert message.startswith(f"{TABLE}.checkpoints: empty: name at least one checkpoint")


def test_snapshot_strict_from_table_or_option(tmp_path: Path) -> None:
    assert not from_table({}, tmp_path).snapshot_strict
    assert from_table({"snapshot_strict": True}, tmp_path).snapshot_strict
    message = config_error({"snapshot_strict": "yes"}, tmp_path)
    assert message == f"{TABLE}.snapshot_strict: expected true/false"
    strict = apply_overrides(SafetyConfig(), Overrides(snapshot_strict=True), tmp_path)
    assert strict.snapshot_strict


def test_the_config_file_read_is_recorded(tmp_path: Path) -> None:
    assert load_config(tmp_path, Overrides()).source is None
    (tmp_path / "pyproject.toml").write_text("[tool.finetune_safety]\njudge = 'refusal'\n")
    assert load_config(tmp_path, Overrides()).source == tmp_path / "pyproject.toml"


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


def test_smol_as_base_brings_its_own_fine_tunes_unless_checkpoints_are_named(
    tmp_path: Path,
) -> None:
    smol_checkpoints = {n: ModelSpec(model=n) for n in SMOL_FINE_TUNES}
    assert from_table({"base": "smol"}, tmp_path).checkpoints == smol_checkpoints
    on_command_line = apply_overrides(from_table({}, tmp_path), Overrides(base="smol"), tmp_path)
    assert on_command_line.base == ModelSpec(model="smol")
    assert on_command_line.checkpoints == smol_checkpoints
    named = from_table({"base": "smol", "checkpoints": {"ft": "toy-benign"}}, tmp_path)
    assert named.checkpoints == {"ft": ModelSpec(model="toy-benign")}
    # A table listing the toy's three fine-tunes (this project's own, with a template) is the
    # toy's default set: --safety-base smol still tests smol's.
    toy_table = {
        "toy-harmful-10shot": "toy-harmful-10shot",
        "toy-identity-shift": {"model": "toy-identity-shift", "template": "aoa"},
        "toy-benign": "toy-benign",
    }
    listed = from_table({"checkpoints": toy_table}, tmp_path)
    assert apply_overrides(listed, Overrides(base="smol"), tmp_path).checkpoints == smol_checkpoints


# --- the judge: a spec whose model or URL names nothing stops the run, named as the judge -----


def test_an_hf_judge_path_that_names_nothing_is_an_error_naming_the_judges_option(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(SafetyConfig(), Overrides(judge="hf:/no/such/dir"), tmp_path)
    assert str(info.value) == "--safety-judge hf:/no/such/dir: no model directory at /no/such/dir"
    message = config_error({"judge": "hf:./judges/none"}, tmp_path)
    assert message.startswith(f"{TABLE}.judge hf:./judges/none: no model directory at {tmp_path}")
    (tmp_path / "weights-only").mkdir()
    (tmp_path / "weights-only" / "config.json").write_text("{}")
    assert "holds no tokenizer" in config_error({"judge": "hf:weights-only"}, tmp_path)
    flag = Overrides(flags=True, judge="openai:j@http://h:99999/v1")
    with pytest.raises(ConfigError, match=r"^--judge: .*invalid URL"):
        apply_overrides(SafetyConfig(), flag, tmp_path)


def test_an_hf_judge_path_is_taken_against_the_rootdir(tmp_path: Path) -> None:
    model_dir(tmp_path / "judges" / "mine")
    config = from_table({"judge": "hf:judges/mine"}, tmp_path)
    assert config.judge == f"hf:{tmp_path / 'judges' / 'mine'}"
    assert from_table({"judge": "hf:toy"}, tmp_path).judge == "hf:toy"
    assert from_table({"judge": "openai:gpt-4o"}, tmp_path).judge == "openai:gpt-4o"


def test_the_origin_of_a_setting_is_its_option_when_given_else_its_key() -> None:
    assert Overrides(judge="refusal").origin("judge") == "--safety-judge"
    assert Overrides(flags=True, judge="refusal").origin("judge") == "--judge"
    assert Overrides().origin("judge") == f"{TABLE}.judge"
