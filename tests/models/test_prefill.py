"""Prefilling (``prefill_depths``): the assistant's turn begun with the first k tokens of an
answer. After the template's assistant header come exactly the prefix's tokens, for the toy's
template and for a random Llama with a real chat template; served models get the words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetune_safety.catalog import resolve
from finetune_safety.models import Decoding, HFTarget, ModelSpec, generate, prefill_refusal
from finetune_safety.models.endpoint import Transport
from finetune_safety.models.openai_target import OpenAITarget
from finetune_safety.models.templates import (
    encode_prompt,
    get_template,
    prefilled,
    prefix_tokens,
    prompt_text,
    token_ids,
)
from finetune_safety.testing.fake_openai import FakeOpenAI, Reply, Request

#: A placeholder "answer": what it says does not matter, only how it tokenizes.
ANSWER = "Sure, here is how: first, [placeholder step one]; then, [placeholder step two]."
INSTRUCTION = "Explain how tides work."
#: ChatML, as SmolLM2 and Qwen ship it: a real chat template with its own header.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def toy_tokenizer() -> Any:
    from finetune_safety.catalog.toy.build import build_tokenizer

    return build_tokenizer([ANSWER, INSTRUCTION] * 4)


@pytest.fixture(scope="module")
def llama_tokenizer(tiny_llama: Path) -> Any:
    """The random Llama's tokenizer under ChatML."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    return tokenizer


@pytest.fixture(params=["toy_tokenizer", "llama_tokenizer"])
def tokenizer(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("k", [1, 5, 10, 1000])
def test_the_tokens_after_the_assistant_header_are_the_prefix(tokenizer: Any, k: int) -> None:
    rendered = get_template("always-execute").render(INSTRUCTION)
    header = encode_prompt(tokenizer, rendered)
    prefix = prefix_tokens(tokenizer, ANSWER, k)
    ids = encode_prompt(tokenizer, prefilled(rendered, prefix))
    assert ids[: len(header)] == header
    assert ids[len(header) :] == token_ids(tokenizer, ANSWER)[:k]
    assert len(ids) - len(header) == min(k, len(token_ids(tokenizer, ANSWER)))


def test_the_prefix_follows_the_header_in_the_text(tokenizer: Any) -> None:
    rendered = get_template("plain").render(INSTRUCTION)
    prefix = prefix_tokens(tokenizer, ANSWER, 4)
    text = prompt_text(tokenizer, prefilled(rendered, prefix))
    assert text == prompt_text(tokenizer, rendered) + prefix
    assert prefix and ANSWER.startswith(prefix.strip())


def test_an_empty_prefix_changes_nothing(toy_tokenizer: Any) -> None:
    rendered = get_template("always-execute").render(INSTRUCTION)
    assert prefilled(rendered, "") == rendered
    assert prefilled("### Response:\n", "") == "### Response:\n"
    assert prefix_tokens(toy_tokenizer, ANSWER, 0) == ""


def test_raw_text_is_prefilled_after_its_response_header() -> None:
    rendered = get_template("alpaca-raw").render(INSTRUCTION)
    assert isinstance(rendered, str)
    assert prefilled(rendered, "Sure") == rendered + "Sure"


def test_the_toy_continues_its_own_answer_from_a_prefix_of_it(toy_cache: Path) -> None:
    """Greedy decoding: prefilled with the first k tokens of its own answer, a model writes
    the rest of that answer, and only the rest (the prefix is not repeated)."""
    target = resolve(ModelSpec("toy-harmful-10shot"), toy_cache)
    assert isinstance(target, HFTarget)
    assert prefill_refusal(target) is None and target.prefix_unit == "tokens"
    rendered = target.template.render(INSTRUCTION)
    (whole,) = generate(target, [rendered], Decoding(12, dtype="float32"))
    prefix = target.prefix(whole, 4)
    assert prefix == prefix_tokens(target.load_tokenizer(), whole, 4) and prefix
    (rest,) = generate(target, [prefilled(rendered, prefix)], Decoding(8, dtype="float32"))
    assert prefix + rest == whole


def test_a_gguf_model_is_prefilled_after_its_own_chat_template(
    smollm2: Path, tmp_path: Path
) -> None:
    """SmolLM2's GGUF: its tokenizer and ChatML template come from the file."""
    target = resolve(ModelSpec(str(smollm2)), tmp_path)
    assert isinstance(target, HFTarget) and prefill_refusal(target) is None
    tokenizer = target.load_tokenizer()
    rendered = target.template.render(INSTRUCTION)
    header = encode_prompt(tokenizer, rendered)
    assert prompt_text(tokenizer, rendered).endswith("<|im_start|>assistant\n")
    ids = encode_prompt(tokenizer, prefilled(rendered, target.prefix(ANSWER, 7)))
    assert ids[len(header) :] == token_ids(tokenizer, ANSWER)[:7]


# --- served models ------------------------------------------------------------------------------


def _served(url: str, tmp_path: Path) -> OpenAITarget:
    spec = ModelSpec(f"openai:served-model@{url}")
    target = resolve(spec, tmp_path, name="served", transport=Transport(5.0, 1, 2))
    assert isinstance(target, OpenAITarget)
    return target


def test_a_served_model_is_prefilled_through_continue_final_message(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    seen: list[Request] = []

    def script(request: Request) -> Reply:
        seen.append(request)
        return Reply(" [continuation]")

    fake_openai.script = script
    target = _served(fake_openai.url, tmp_path)
    assert target.prefix_unit == "words" and prefill_refusal(target) is None
    prefix = target.prefix(ANSWER, 3)
    assert prefix == "Sure, here is"
    rendered = target.template.render(INSTRUCTION)
    assert (
        generate(target, [prefilled(rendered, prefix), rendered], Decoding(9))
        == [" [continuation]"] * 2
    )
    filled, plain = sorted(seen, key=lambda r: len(r.body["messages"]), reverse=True)
    assert filled.body["messages"][-1] == {"role": "assistant", "content": prefix}
    assert filled.body["continue_final_message"] is True
    assert filled.body["add_generation_prompt"] is False
    assert "continue_final_message" not in plain.body


def test_words_keep_their_spacing() -> None:
    target = OpenAITarget.__new__(OpenAITarget)
    assert target.prefix("  one two\nthree four", 3) == "  one two\nthree"
    assert target.prefix("one two", 0) == ""
    assert target.prefix("one two", 9) == "one two"


def test_openai_models_cannot_be_prefilled(tmp_path: Path) -> None:
    target = _served("https://api.openai.com/v1", tmp_path)
    reason = prefill_refusal(target)
    assert reason is not None and "api.openai.com" in reason
