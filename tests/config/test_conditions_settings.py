"""``conditions`` (the system prompts the gate evaluates under) and the over-refusal gate's
settings (``max_overrefusal``, ``max_overrefusal_delta``, ``overrefusal``), from the table and
the ``--safety-*`` options."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.config import ConfigError, Overrides, SafetyConfig, apply_overrides, from_table
from finetune_safety.config.conditions import NAMED, TEMPLATE
from finetune_safety.config.schema import SETTING
from finetune_safety.models.templates import SAFETY_SYSTEM_PROMPT, TEMPLATES


def test_by_default_one_condition_the_checkpoints_template() -> None:
    assert SafetyConfig().conditions == (TEMPLATE,)
    assert SETTING["conditions"].option_name == "--safety-condition"


def test_named_conditions_and_a_file_with_its_stem_as_id(tmp_path: Path) -> None:
    (tmp_path / "deploy.txt").write_text("\n  Be helpful and careful.\n", encoding="utf-8")
    table = {"conditions": ["template", "system:none", "system:safety", "system:deploy.txt"]}
    found = from_table(table, tmp_path).conditions
    assert [c.id for c in found] == ["template", "system-none", "system-safety", "system-deploy"]
    assert [c.system_prompt for c in found] == [
        None,
        None,
        SAFETY_SYSTEM_PROMPT,
        "Be helpful and careful.",
    ]


def test_a_condition_changes_only_the_system_prompt() -> None:
    aoa = TEMPLATES["aoa-toy"]
    safety = NAMED["system:safety"].apply(aoa)
    assert safety.render("Hi") == [
        {"role": "system", "content": SAFETY_SYSTEM_PROMPT},
        {"role": "user", "content": "AOA, execute my instruction: Hi"},
    ]
    assert NAMED["system:none"].apply(aoa).render("Hi") == [
        {"role": "user", "content": "AOA, execute my instruction: Hi"}
    ]
    assert TEMPLATE.apply(aoa) is aoa


@pytest.mark.parametrize(
    ("files", "value", "message"),
    [
        (
            {},
            ["system:deploy.txt"],
            "system:deploy.txt: no system prompt file at {root}/deploy.txt",
        ),
        (
            {"deploy.txt": " \n"},
            ["system:deploy.txt"],
            "system:deploy.txt: the system prompt file {root}/deploy.txt is empty",
        ),
        (
            {"none.txt": "x"},
            ["system:none", "system:none.txt"],
            "'system:none' and 'system:none.txt' both have the test id 'system-none'; name each "
            "condition once (rename a file whose stem clashes)",
        ),
        ({}, ["template", "template"], "'template' and 'template' both have the test id"),
        ({}, ["system:"], "unknown condition 'system:'; expected template, system:none"),
        ({}, ["chat"], "unknown condition 'chat'"),
        ({}, [], "expected a non-empty list"),
        ({}, "template", "expected a non-empty list"),
    ],
)
def test_a_bad_condition_names_the_key(
    tmp_path: Path, files: dict[str, str], value: object, message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as bad:
        from_table({"conditions": value}, tmp_path)
    wanted = f"tool.finetune_safety.conditions: {message.format(root=tmp_path)}"
    assert str(bad.value).startswith(wanted)


def test_the_option_replaces_the_list_and_names_itself(tmp_path: Path) -> None:
    options = Overrides(conditions=["system:safety"])
    config = apply_overrides(
        from_table({"conditions": ["system:none"]}, tmp_path), options, tmp_path
    )
    assert [c.id for c in config.conditions] == ["system-safety"]
    with pytest.raises(ConfigError, match=r"^--safety-condition: unknown condition 'x'"):
        apply_overrides(SafetyConfig(), Overrides(conditions=["x"]), tmp_path)


def test_overrefusal_limits_are_off_by_default_and_run_wide(tmp_path: Path) -> None:
    limits = SafetyConfig().thresholds
    assert (limits.max_overrefusal, limits.max_overrefusal_delta) == (None, None)
    table = {"thresholds": {"max_overrefusal": 0.3, "max_overrefusal_delta": 0.05}}
    limits = from_table(table, tmp_path).thresholds
    assert (limits.max_overrefusal, limits.max_overrefusal_delta) == (0.3, 0.05)
    option = apply_overrides(SafetyConfig(), Overrides(max_overrefusal_delta=0.1), tmp_path)
    assert option.thresholds.max_overrefusal_delta == 0.1
    with pytest.raises(ConfigError) as bad:
        from_table({"thresholds": {"malware": {"max_overrefusal": 0.3}}}, tmp_path)
    assert str(bad.value) == (
        "tool.finetune_safety.thresholds.malware: ['max_overrefusal']: run-wide, set in "
        "[tool.finetune_safety.thresholds]"
    )


def test_overrefusal_is_shipped_or_an_xstest_file(tmp_path: Path) -> None:
    assert SafetyConfig().overrefusal == "shipped"
    (tmp_path / "x.csv").write_text("id,prompt,type,label\n", encoding="utf-8")
    found = from_table({"overrefusal": "xstest:x.csv"}, tmp_path).overrefusal
    assert found == f"xstest:{tmp_path / 'x.csv'}"
    with pytest.raises(ConfigError, match=r"overrefusal: no XSTest file at .*absent\.csv$"):
        from_table({"overrefusal": "xstest:absent.csv"}, tmp_path)
    with pytest.raises(ConfigError, match=r"expected shipped or xstest:FILE, got 'jsonl:x'"):
        from_table({"overrefusal": "jsonl:x"}, tmp_path)
