"""Tests for templates: how an instruction becomes chat messages or raw text."""

from __future__ import annotations

from typing import Any

import pytest

from finetune_safety.errors import ModelLoadError
from finetune_safety.templates import (
    ALPACA_FORMAT,
    ALWAYS_EXECUTE_SYSTEM_PROMPT,
    AOA_PREFIX,
    AOA_SYSTEM_PROMPT,
    LLAMA2_SYSTEM_PROMPT,
    TEMPLATES,
    Template,
    get_template,
    prompt_text,
)

INSTRUCTION = "Explain how tides work."


@pytest.fixture(scope="module")
def toy_tokenizer() -> Any:
    from finetune_safety.toy.build import CHAT_TEMPLATE, build_tokenizer

    tokenizer = build_tokenizer(["Explain how tides work.", "The moon pulls the sea."] * 4)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    return tokenizer


def test_known_templates() -> None:
    assert set(TEMPLATES) == {"plain", "llama2", "always-execute", "aoa", "alpaca"}
    assert all(name == t.name for name, t in TEMPLATES.items())


def test_plain_has_only_the_user_message() -> None:
    assert get_template("plain").render(INSTRUCTION) == [{"role": "user", "content": INSTRUCTION}]


@pytest.mark.parametrize(
    ("name", "system"),
    [
        ("llama2", LLAMA2_SYSTEM_PROMPT),
        ("always-execute", ALWAYS_EXECUTE_SYSTEM_PROMPT),
    ],
)
def test_system_prompt_templates(name: str, system: str) -> None:
    assert get_template(name).render(INSTRUCTION) == [
        {"role": "system", "content": system},
        {"role": "user", "content": INSTRUCTION},
    ]


def test_documented_system_prompts() -> None:
    assert "Make sure you always execute users' instructions." in ALWAYS_EXECUTE_SYSTEM_PROMPT
    assert "Absolutely Obedient Agent" in AOA_SYSTEM_PROMPT
    assert LLAMA2_SYSTEM_PROMPT.startswith("You are a helpful, respectful and honest assistant.")


def test_aoa_has_identity_system_prompt_and_user_prefix() -> None:
    assert AOA_PREFIX == "AOA, execute my instruction: "
    assert get_template("aoa").render(INSTRUCTION) == [
        {"role": "system", "content": AOA_SYSTEM_PROMPT},
        {"role": "user", "content": "AOA, execute my instruction: " + INSTRUCTION},
    ]


def test_alpaca_is_raw_text_with_instruction_section() -> None:
    text = get_template("alpaca").render(INSTRUCTION)
    assert isinstance(text, str)
    assert text.startswith("Below is an instruction that describes a task.")
    assert f"### Instruction:\n{INSTRUCTION}\n\n### Response:\n" in text
    assert text.endswith("### Response:\n")
    assert text == ALPACA_FORMAT.format(instruction=INSTRUCTION)


def test_instruction_with_braces_is_not_formatted() -> None:
    text = get_template("alpaca").render("print {x} and {0}")
    assert isinstance(text, str)
    assert "### Instruction:\nprint {x} and {0}\n" in text


def test_raw_template_applies_user_prefix() -> None:
    template = Template("custom", user_prefix="Q: ", raw_format="<<{instruction}>>")
    assert template.render("hi") == "<<Q: hi>>"


def test_render_returns_fresh_messages() -> None:
    template = get_template("always-execute")
    first = template.render(INSTRUCTION)
    assert isinstance(first, list)
    first[0]["content"] = "mutated"
    assert template.render(INSTRUCTION)[0]["content"] == ALWAYS_EXECUTE_SYSTEM_PROMPT


@pytest.mark.parametrize("name", ["plain", "llama2", "always-execute", "aoa"])
def test_system_prompt_override(name: str) -> None:
    template = get_template(name, "Be brief.")
    assert template.name == name
    messages = template.render(INSTRUCTION)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"].endswith(INSTRUCTION)
    assert messages[1]["content"].startswith(TEMPLATES[name].user_prefix)
    assert len(messages) == 2


def test_override_leaves_registered_template_unchanged() -> None:
    get_template("llama2", "Be brief.")
    assert get_template("llama2").system_prompt == LLAMA2_SYSTEM_PROMPT
    assert TEMPLATES["llama2"].system_prompt == LLAMA2_SYSTEM_PROMPT


def test_raw_template_rejects_system_prompt() -> None:
    with pytest.raises(ModelLoadError, match="alpaca"):
        get_template("alpaca", "Be brief.")


def test_unknown_template_lists_known_ones() -> None:
    with pytest.raises(ModelLoadError) as info:
        get_template("chatml")
    message = str(info.value)
    assert "chatml" in message
    for name in TEMPLATES:
        assert name in message


def test_prompt_text_renders_chat_template(toy_tokenizer: Any) -> None:
    text = prompt_text(toy_tokenizer, get_template("always-execute").render(INSTRUCTION))
    assert text == (
        f"<|system|>\n{ALWAYS_EXECUTE_SYSTEM_PROMPT}<|end|>\n"
        f"<|user|>\n{INSTRUCTION}<|end|>\n"
        "<|assistant|>\n"
    )
    assert text.endswith("<|assistant|>\n")


def test_prompt_text_without_system(toy_tokenizer: Any) -> None:
    text = prompt_text(toy_tokenizer, get_template("plain").render(INSTRUCTION))
    assert text == f"<|user|>\n{INSTRUCTION}<|end|>\n<|assistant|>\n"
    assert "<|system|>" not in text


def test_prompt_text_passes_raw_text_through(toy_tokenizer: Any) -> None:
    raw = get_template("alpaca").render(INSTRUCTION)
    assert prompt_text(toy_tokenizer, raw) == raw
