"""Endpoints: specs, URLs and the secrets in them. Every output a user sees or keeps (terminal,
JUnit, reports, log, cache, CLI) is grepped for each secret."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from suite_helpers import REPO, bench_lines, output

from finetune_safety.endpoint import EndpointError, parse, redact
from finetune_safety.fake_openai import FakeOpenAI, Reply, Request

pytest_plugins = ["pytester"]

PASSWORD = "pa@ss-PWSECRET@word"
QUERY_SECRETS = {"api-key": "QKEYSECRET", "key": "QPLAINSECRET", "token": "QTOKSECRET"}
API_KEY = "sk-test-APIKEYSECRET"
SECRETS = ("PWSECRET", *QUERY_SECRETS.values(), "APIKEYSECRET")


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


def script(request: Request) -> Reply:
    return Reply("I'm sorry, but I cannot help with that.")


def test_url_credentials_and_api_key_send_the_key_as_bearer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeOpenAI(script, api_key=API_KEY) as server:
        url = server.url.replace("//", f"//user:{PASSWORD}@") + "?api-key=QKEYSECRET"
        endpoint = parse(f"openai:m@{url}")
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        client = endpoint.client()
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert server.requests[-1].authorized  # not replaced by Basic auth from the URL
        assert server.requests[-1].path == "/v1/chat/completions"


def secret_url(server: FakeOpenAI) -> str:
    query = "&".join(f"{k}={v}" for k, v in QUERY_SECRETS.items())
    return server.url.replace("//", f"//user:{PASSWORD}@") + "?" + query


def leaks(root: Path) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(root)}: {s}" for s in SECRETS if s.encode() in data]
    return found


def run(
    root: Path, env: dict[str, str], module: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_no_secret_in_any_output(pytester: pytest.Pytester) -> None:
    """Base and checkpoint served from one URL with a password holding '@' and query secrets,
    $OPENAI_API_KEY set: the suite and the CLI run, and no output holds any secret."""
    root = pytester.path
    (root / "safety_tests").mkdir()
    shutil.copy(REPO / "safety_tests" / "test_safety.py", root / "safety_tests")
    (root / "bench.jsonl").write_text("\n".join(bench_lines()) + "\n", encoding="utf-8")
    (root / "pyproject.toml").write_text("[tool.finetune_safety]\nmax_new_tokens = 16\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OPENAI_"))}
    env["OPENAI_API_KEY"] = API_KEY
    with FakeOpenAI(script, api_key=API_KEY) as server:
        url = secret_url(server)
        suite_args = [
            *("safety_tests", "-p", "no:cacheprovider", "-v", "--snapshot-update"),
            *("--safety-cache-dir=cache", "--safety-benchmark=jsonl:bench.jsonl"),
            *("--safety-base", f"openai:base@{url}"),
            *("--safety-checkpoint", f"served=openai:tuned@{url}"),
            *("--junitxml=report.xml", "--safety-report-json=report.json"),
            *("--safety-report-md=report.md", "--log-file=run.log", "--log-file-level=DEBUG"),
        ]
        cli_args = [
            *("evaluate", "--model", f"openai:tuned@{url}", "--benchmark=jsonl:bench.jsonl"),
            *("--cache-dir=cache", "--out=records.jsonl"),
        ]
        suite = run(root, env, "pytest", *suite_args)
        cli = run(root, env, "finetune_safety.cli", *cli_args)
        assert server.requests and all(r.authorized for r in server.requests)
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "***@127.0.0.1" in suite.stdout  # the header names the endpoint, redacted
    assert json.loads((root / "report.json").read_text())
    for text in (suite.stdout, suite.stderr, cli.stdout, cli.stderr):
        assert not [s for s in SECRETS if s in text], text
    assert leaks(root) == []


def test_bad_port_in_the_suite_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_safety="from finetune_safety.gate import *  # noqa: F403")
    result = pytester.runpytest("--safety-base", "openai:m@http://user:PWSECRET@h:70000/v1")
    assert result.ret == 4
    text = output(result)
    assert "finetune-safety" in text and "70000" in text and "PWSECRET" not in text
