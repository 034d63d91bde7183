"""The ``fake_openai`` fixture: a started server per test, scripted by attribute."""

from __future__ import annotations

import openai

from finetune_safety.testing.fake_openai import FakeOpenAI, Reply


def _ask(server: FakeOpenAI, text: str, key: str = "sk-test") -> str:
    client = openai.OpenAI(base_url=server.url, api_key=key, max_retries=0)
    reply = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": text}], temperature=0
    )
    return str(reply.choices[0].message.content)


def test_fixture_serves_refusals_by_default(fake_openai: FakeOpenAI) -> None:
    assert _ask(fake_openai, "hello").startswith("I'm sorry")
    assert [r.text for r in fake_openai.requests] == ["hello"]


def test_fixture_is_scripted_by_attribute(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda request: Reply(request.text.upper())
    assert _ask(fake_openai, "hi") == "HI"


def test_each_test_gets_a_fresh_server(fake_openai: FakeOpenAI) -> None:
    assert fake_openai.requests == []
