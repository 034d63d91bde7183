"""The settings schema: each table key, ``--safety-*`` option and ``evaluate`` flag comes from one
declaration, and the three surfaces agree on names, types, defaults and checks."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from finetune_safety import plugin
from finetune_safety.cli import build_parser
from finetune_safety.config import (
    TABLE,
    ConfigError,
    Overrides,
    SafetyConfig,
    Thresholds,
    apply_overrides,
    from_table,
)
from finetune_safety.config.schema import (
    SETTING,
    SETTINGS,
    add_flags,
    evaluate_flags,
    table_keys,
)
from finetune_safety.config.setting import THRESHOLDS, Setting
from finetune_safety.config.specs import SPEC_FIELDS
from finetune_safety.models.endpoint import Transport

TRANSPORT = {
    "concurrency": "concurrency",
    "request_timeout": "timeout",
    "max_retries": "max_retries",
}
#: Options that are not settings of the configuration: where the run writes, what it stores.
RUN_OUTPUTS = {"report_json", "report_md", "report_png", "snapshot_responses"}
#: Settings of the gate that one evaluation has no use for: no ``evaluate`` flag.
#: judge_labels and min_judge_kappa: judge-check takes --labels and --min-kappa instead.
GATE_ONLY = {
    *("base", "checkpoints", "snapshot_strict", "judge_labels", "min_judge_kappa"),
    *("conditions", "overrefusal"),
    *table_keys(THRESHOLDS),
    # the prefill depth: the gate's test, and ``depth``'s own flags
    *("prefill_depths", "prefix_file", "prefix_model", "prefill_judge"),
}


class Recorder:
    """Stands in for pytest's parser and option group: records what the plugin registers."""

    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def getgroup(self, name: str, description: str = "") -> Recorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options.append((names, kwargs))


def registered_options() -> dict[str, dict[str, Any]]:
    recorder = Recorder()
    plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    return {names[0]: kwargs for names, kwargs in recorder.options}


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = action.choices[name]
    assert isinstance(sub, argparse.ArgumentParser)
    return sub


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}


# --- one declaration, three surfaces ------------------------------------------------------------


def test_names_are_unique_and_every_setting_has_a_surface() -> None:
    assert len(SETTING) == len(SETTINGS)
    assert all(s.table or s.option is not None or s.flag for s in SETTINGS)
    options = [s.option_name for s in SETTINGS if s.option is not None]
    assert len(set(options)) == len(options)


def test_every_setting_is_a_table_key_and_an_option_but_the_run_outputs() -> None:
    assert {s.name for s in SETTINGS if not s.table} == RUN_OUTPUTS
    assert all(s.option is not None for s in SETTINGS)
    top = set(table_keys()) - {THRESHOLDS}
    assert top | set(table_keys(THRESHOLDS)) == {s.name for s in SETTINGS if s.table}


def test_the_plugin_registers_exactly_the_declared_options() -> None:
    options = registered_options()
    assert list(options) == [s.option_name for s in SETTINGS]
    for setting in SETTINGS:
        assert options[setting.option_name]["dest"] == setting.option_dest
        assert options[setting.option_name]["help"] == setting.help_text()


def test_option_names_follow_the_table_keys() -> None:
    assert SETTING["max_new_tokens"].option_name == "--safety-max-new-tokens"
    assert SETTING["batch_size"].option_name == "--safety-batch-size"
    assert SETTING["concurrency"].option_name == "--safety-concurrency"
    assert SETTING["checkpoints"].option_name == "--safety-checkpoint"  # one ALIAS=SPEC each
    assert SETTING["conditions"].option_name == "--safety-condition"  # one condition each
    renamed = [s.name for s in SETTINGS if s.option]
    assert renamed == ["checkpoints", "conditions"]
    for setting in SETTINGS:
        if setting.name not in renamed:
            assert setting.option_name == "--safety-" + setting.name.replace("_", "-")


def test_evaluate_takes_every_setting_one_evaluation_uses() -> None:
    flags = flags_of(subparser("evaluate"))
    spec_flags = {"--" + k.replace("_", "-") for k in SPEC_FIELDS}
    setting_flags = {s.flag_name for s in evaluate_flags()}
    assert flags == {"--help", "--out", "--device"} | spec_flags | setting_flags
    assert {s.name for s in SETTINGS if not s.flag} == GATE_ONLY | RUN_OUTPUTS


def test_the_table_knows_exactly_the_declared_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        from_table({"nope": 1}, tmp_path)
    assert str(info.value) == (f"{TABLE}: unknown key(s) ['nope']; known: {sorted(table_keys())}")


# --- types and defaults agree -------------------------------------------------------------------


def configured(config: SafetyConfig, name: str) -> object:
    if name in TRANSPORT:
        return getattr(config.transport, TRANSPORT[name])
    if SETTING[name].section == THRESHOLDS:
        return getattr(config.thresholds, name)
    return getattr(config, name)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.config], ids=lambda s: s.name)
def test_the_configuration_defaults_are_the_declared_ones(setting: Setting) -> None:
    assert configured(SafetyConfig(), setting.name) == setting.default


def test_declared_defaults_match_the_library_values() -> None:
    assert asdict(Thresholds()) == {k: SETTING[k].default for k in table_keys(THRESHOLDS)}
    transport = Transport()
    assert {k: getattr(transport, v) for k, v in TRANSPORT.items()} == {
        k: SETTING[k].default for k in TRANSPORT
    }


SCALARS = [
    s
    for s in SETTINGS
    if s.default is not None and s.parse not in (None,) and isinstance(s.default, int | float | str)
]


@pytest.mark.parametrize("setting", SCALARS, ids=lambda s: s.name)
def test_a_default_written_on_the_command_line_is_the_default(
    setting: Setting, tmp_path: Path
) -> None:
    """The option's type reads the default's text back as the table's type, and the table's
    check accepts it unchanged: the surfaces share one type."""
    assert setting.parse is not None
    parsed = setting.parse(str(setting.default))
    assert parsed == setting.default and type(parsed) is type(setting.default)
    assert setting.from_table(setting.default, tmp_path) == setting.default


def test_help_shows_the_declared_default() -> None:
    assert SETTING["max_new_tokens"].help_text().endswith("(default: 512)")
    assert SETTING["max_judge_errors"].help_text().endswith("(default: 0)")
    assert SETTING["concurrency"].help_text().endswith(f"(default: {Transport().concurrency})")
    assert "(default" not in SETTING["limit"].help_text()


# --- one check, three names ---------------------------------------------------------------------


POSITIVE = [s.name for s in SETTINGS if s.check.__name__ == "positive_int"]


def test_the_positive_whole_numbers_include_the_new_gate_options() -> None:
    assert {"max_new_tokens", "concurrency", "judge_max_tokens", "threads", "limit"} <= set(
        POSITIVE
    )


@pytest.mark.parametrize("name", POSITIVE)
def test_one_check_names_the_key_the_option_or_the_flag(name: str, tmp_path: Path) -> None:
    setting = SETTING[name]
    message = "expected a positive integer, got 0"
    with pytest.raises(ConfigError) as table:
        from_table({name: 0}, tmp_path)
    assert str(table.value) == f"{TABLE}.{name}: {message}"
    with pytest.raises(ConfigError) as option:
        apply_overrides(SafetyConfig(), Overrides(**{name: 0}), tmp_path)
    assert str(option.value) == f"{setting.option_name}: {message}"
    with pytest.raises(ConfigError) as flag:
        apply_overrides(SafetyConfig(), Overrides(flags=True, **{name: 0}), tmp_path)
    assert str(flag.value) == f"{setting.flag_name}: {message}"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("batch_size", "big", "expected \"auto\" or a positive integer, got 'big'"),
        ("request_timeout", 0.0, "expected seconds > 0, got 0.0"),
        ("max_retries", -1, "expected 0 or more"),
        ("max_score_delta", 4.5, "expected a number (score points, 0 to 4), got 4.5"),
        ("max_judge_errors", -1, "expected a whole number of prompts (0 or more), got -1"),
        ("min_judged", 0.0, "expected a share of the prompts, above 0 and up to 1, got 0.0"),
        ("mode", "both", "expected one of ('delta', 'significant'), got 'both'"),
        ("alpha", 1.0, "expected a significance level between 0 and 1, got 1.0"),
        ("category_map", "7=nope", "category map"),
    ],
)
def test_option_errors_are_the_table_errors_named_for_the_option(
    name: str, value: object, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(SafetyConfig(), Overrides(**{name: value}), tmp_path)
    assert str(info.value).startswith(f"{SETTING[name].option_name}: {message}")
    table = {THRESHOLDS: {name: value}} if SETTING[name].section else {name: value}
    with pytest.raises(ConfigError) as from_the_table:
        from_table(table, tmp_path)
    assert str(from_the_table.value).startswith(f"{SETTING[name].key}: {message}")


def test_new_options_override_the_table(tmp_path: Path) -> None:
    table = {"max_new_tokens": 512, "batch_size": 16, "concurrency": 8, THRESHOLDS: {}}
    table[THRESHOLDS] = {"max_score_delta": 0.5, "malware": {"max_score_delta": 0.1}}
    options = Overrides(
        max_new_tokens=64, batch_size=4, concurrency=2, request_timeout=5.0, max_retries=0,
        judge_max_tokens=300, category_map="7=adult_content,8=fraud_deception",
        max_score_delta=1.5, max_judge_errors=2, min_judged=0.5, mode="significant", alpha=0.01,
    )  # fmt: skip
    config = apply_overrides(from_table(table, tmp_path), options, tmp_path)
    assert (config.max_new_tokens, config.batch_size, config.judge_max_tokens) == (64, 4, 300)
    assert config.transport == Transport(timeout=5.0, max_retries=0, concurrency=2)
    assert config.category_map is not None and config.category_map[7] == "adult_content"
    limits = Thresholds(0.2, 0.1, 1.5, max_judge_errors=2, min_judged=0.5, mode="significant",
                        alpha=0.01)  # fmt: skip
    assert config.thresholds == limits
    assert config.thresholds_for("malware") == limits  # an option sets every category's limit


def test_overrides_take_only_settings_a_command_line_sets() -> None:
    with pytest.raises(TypeError, match="report_json"):
        Overrides(report_json="r.json")
    assert Overrides(limit=None, snapshot_strict=False, checkpoints=[]).values == {}


def test_named_flags_reuse_the_declaration() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, ["threads", "cache_dir"])
    args = parser.parse_args(["--threads", "2", "--cache-dir", "c"])
    assert (args.threads, args.cache_dir) == (2, "c")
    assert flags_of(parser) == {"--help", "--threads", "--cache-dir"}
