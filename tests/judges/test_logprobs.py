"""Reading a classifier's first answer token from logprobs in both shapes servers send, as the
openai client hands them back from the fake server."""

from __future__ import annotations

import math
from typing import Any

import pytest

from finetune_safety.judges.logprobs import (
    first_alternatives,
    share,
    word_indexes,
    word_masses,
)
from finetune_safety.testing.fake_openai import FakeOpenAI, Reply, Request
from finetune_safety.testing.tokens import Token, answer, chat_logprobs, legacy_logprobs

GUARD = ("unsafe", "safe")
TOKENS = answer("\n\nunsafe\nS1,S9", {"unsafe": 0.8, "safe": 0.15, "Unsafe": 0.05})


def served(shape: str) -> dict[str, Any]:
    """The logprobs of one reply as the openai client returns them from the fake server."""
    legacy = shape == "legacy chat"

    def script(request: Request) -> Reply:
        return Reply(tokens=TOKENS, legacy_logprobs=legacy)

    with FakeOpenAI(script) as server:
        import openai

        client = openai.OpenAI(api_key="x", base_url=server.url)
        if shape == "completions":
            reply: Any = client.completions.create(model="m", prompt="p", logprobs=5)
        else:
            reply = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "p"}], logprobs=True
            )
        choice = reply.choices[0].model_dump()
        client.close()
    assert (choice.get("text") or choice.get("message", {}).get("content")) == "\n\nunsafe\nS1,S9"
    return dict(choice["logprobs"])


@pytest.mark.parametrize("shape", ["chat", "legacy chat", "completions"])
def test_both_shapes_give_the_first_non_blank_tokens_alternatives(shape: str) -> None:
    found = first_alternatives(served(shape))
    assert found is not None
    assert found == pytest.approx({"unsafe": 0.8, "safe": 0.15, "Unsafe": 0.05})
    assert share(word_masses(found, GUARD)) == pytest.approx(0.8 / 0.95)


def test_the_shapes_are_the_ones_servers_send() -> None:
    chat = chat_logprobs(TOKENS)
    assert chat["content"][0]["token"] == "\n\n"
    assert {"token", "logprob", "bytes", "top_logprobs"} <= set(chat["content"][1])
    legacy = legacy_logprobs(TOKENS)
    assert legacy["tokens"][:2] == ["\n\n", "unsafe"]
    assert set(legacy) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert legacy["text_offset"][:3] == [0, 2, 8]


def test_the_chosen_token_counts_when_the_list_leaves_it_out() -> None:
    chat = {"content": [{"token": "safe", "logprob": math.log(0.7), "top_logprobs": []}]}
    assert first_alternatives(chat) == pytest.approx({"safe": 0.7})
    legacy = {"tokens": [" ", "safe"], "token_logprobs": [0.0, math.log(0.6)], "top_logprobs": []}
    assert first_alternatives(legacy) == pytest.approx({"safe": 0.6})


def test_alternatives_with_the_same_text_add_up() -> None:
    entry = {"token": "safe", "logprob": -0.1, "top_logprobs": [
        {"token": "safe", "logprob": math.log(0.5)}, {"token": "safe", "logprob": math.log(0.2)},
    ]}  # fmt: skip
    assert first_alternatives({"content": [entry]}) == pytest.approx({"safe": 0.7})


@pytest.mark.parametrize(
    "logprobs",
    [
        None,
        "no",
        {},
        {"content": None},
        {"content": []},
        {"content": [{"token": "\n\n", "logprob": 0.0, "top_logprobs": []}]},  # blank only
        {"content": [{"nope": 1}]},
        {"tokens": "safe"},
        {"tokens": ["safe"], "token_logprobs": ["x"], "top_logprobs": [None]},
        {"content": [{"token": "safe", "logprob": 3.0, "top_logprobs": [{"token": 1}]}]},
    ],
)
def test_what_cannot_be_read_gives_none(logprobs: object) -> None:
    assert first_alternatives(logprobs) is None


def test_a_token_counts_for_the_one_word_it_starts() -> None:
    found = {"un": 0.3, "s": 0.2, " safe": 0.1, "unsafe": 0.1, "Safe": 0.1, "sorry": 0.2}
    # "un" starts only "unsafe"; "s" starts only "safe"; case counts unless folded.
    assert word_masses(found, GUARD) == pytest.approx([0.4, 0.3])
    assert word_masses(found, GUARD, fold_case=True) == pytest.approx([0.4, 0.4])
    assert word_masses({"Yes": 0.6, " no": 0.3}, ("yes", "no"), fold_case=True) == [0.6, 0.3]


def test_share_is_none_without_mass() -> None:
    assert share([0.0, 0.0]) is None
    assert share([0.2, 0.6]) == pytest.approx(0.25)


def test_word_indexes_read_a_vocabulary() -> None:
    vocabulary = ["<s>", "safe", "un", "unsafe", " ", "s", "sorry", "x"]
    assert word_indexes(vocabulary, GUARD) == [[2, 3], [1, 5]]


def test_answer_puts_the_alternatives_on_the_first_word() -> None:
    tokens = answer("  Yes", {"Yes": 0.75, "No": 0.25})
    assert [t.text for t in tokens] == ["  ", "Yes"]
    assert tokens[0].top == {"  ": 0.0}
    assert tokens[1].logprob == pytest.approx(math.log(0.75))
    assert tokens[1].top == pytest.approx({"Yes": math.log(0.75), "No": math.log(0.25)})
    assert answer("safe") == (Token("safe", 0.0, {"safe": 0.0}),)
