"""Endpoints: specs, URLs and the secrets in them. That no output of a run holds a secret is
shown end to end in ``acceptance/test_openai_suite.py``."""

from __future__ import annotations

import pytest

from finetune_safety.models.endpoint import EndpointError, parse, redact
from finetune_safety.testing.fake_openai import FakeOpenAI

PASSWORD = "pa@ss-PWSECRET@word"
API_KEY = "sk-test-APIKEYSECRET"


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("openai:m@http://u:pw@h:1/v1", "openai:m@http://***@h:1/v1"),
        (f"openai:m@https://user:{PASSWORD}@h/v1", "openai:m@https://***@h/v1"),
        ("openai:m@http://h/v1?api-key=A1&x=2", "openai:m@http://h/v1?api-key=***&x=2"),
        ("openai:m@http://h/v1?x=1&key=A1", "openai:m@http://h/v1?x=1&key=***"),
        ("openai:m@http://h/v1?token=A1", "openai:m@http://h/v1?token=***"),
        ("openai:m@http://h/v1?api_key=A1&access_token=B2", "openai:m@http://h/v1?api_key=***&access_token=***"),
        ("openai:m@http://h:8000/v1", "openai:m@http://h:8000/v1"),
        ("toy-benign", "toy-benign"),
    ],
)  # fmt: skip
def test_redact(spec: str, shown: str) -> None:
    assert redact(spec) == shown


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999/v1", "http://127.0.0.1:port/v1", "http://:8000/v1"]
)
def test_invalid_url_is_one_line_naming_it(url: str) -> None:
    with pytest.raises(EndpointError) as info:
        parse(f"openai:m@{url}")
    message = str(info.value)
    assert url in message and "\n" not in message


def test_url_credentials_and_api_key_send_the_key_as_bearer(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_openai.api_key = API_KEY
    url = fake_openai.url.replace("//", f"//user:{PASSWORD}@") + "?api-key=QKEYSECRET"
    endpoint = parse(f"openai:m@{url}")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    client = endpoint.client()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert fake_openai.requests[-1].authorized  # not replaced by Basic auth from the URL
    assert fake_openai.requests[-1].path == "/v1/chat/completions"
