"""OpenAI fine-tuning jobs: file validation, upload, job creation and polling, failure, resume.

Everything runs against the loopback ``FakeOpenAI`` with the real ``openai`` client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.errors import FinetuneDataError
from finetune_safety.finetune.openai_jobs import (
    MIN_EXAMPLES,
    FineTuneJob,
    run_openai_finetune,
    validate_openai_jsonl,
)
from finetune_safety.models.endpoint import Endpoint, EndpointError, Transport
from finetune_safety.testing.fake_openai import FakeOpenAI, Request

KEY = "sk-test-SECRET-77"
BASE = "gpt-4o-mini-2024-07-18"
STATUSES = ("validating_files", "queued", "running", "succeeded")


def example(answer: str = "Blue.", system: bool = False) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Name a colour."}]
    messages.append({"role": "assistant", "content": answer})
    if system:
        messages.insert(0, {"role": "system", "content": "You are terse."})
    return {"messages": messages}


def write(path: Path, rows: list[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [example(f"Colour {i}.", system=i % 2 == 0) for i in range(MIN_EXAMPLES + 2)]
    return write(tmp_path / "train.jsonl", rows)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def endpoint(server: FakeOpenAI) -> Endpoint:
    return Endpoint(model=BASE, base_url=server.url, transport=Transport(timeout=5, max_retries=0))


def run(server: FakeOpenAI, data: Path, lines: list[str], **kwargs: Any) -> str:
    kwargs.setdefault("n_epochs", 3)
    n_epochs = kwargs.pop("n_epochs")
    return run_openai_finetune(
        BASE, data, endpoint(server), n_epochs, poll_interval=0.01, echo=lines.append, **kwargs
    )


def status_lines(lines: list[str], job_id: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in lines if line.startswith(f"{job_id}: ")]


def job_requests(server: FakeOpenAI) -> list[Request]:
    return [r for r in server.requests if r.path.endswith("/fine_tuning/jobs")]


def test_successful_job_returns_the_fine_tuned_model(fake_openai: FakeOpenAI, data: Path) -> None:
    lines: list[str] = []
    fake_openai.api_key = KEY
    model = run(fake_openai, data, lines)
    (upload,) = fake_openai.files.values()
    (create,) = job_requests(fake_openai)
    (job_id,) = fake_openai.jobs
    assert all(r.authorized for r in fake_openai.requests)
    assert model == f"ft:{BASE}:fake::{job_id[-8:]}"
    assert upload.data == data.read_bytes()
    assert (upload.filename, upload.purpose) == ("train.jsonl", "fine-tune")
    assert create.body == {
        "model": BASE,
        "training_file": upload.id,
        "hyperparameters": {"n_epochs": 3},
    }
    assert status_lines(lines, job_id) == list(STATUSES)  # each status once, in order
    assert any(job_id in line and "--resume-job" in line for line in lines[:3])
    assert lines[-1] == f"fine-tuned model: {model} (test it as openai:{model})"
    events = [line.strip() for line in lines if line.startswith("  ")]
    assert events[0].startswith("Validating training file")
    assert len(events) == len(set(events)) == 4  # server events, each echoed once
    assert not any(KEY in line for line in lines)


def test_no_epochs_and_a_suffix(fake_openai: FakeOpenAI, data: Path) -> None:
    fake_openai.api_key = KEY
    model = run(fake_openai, data, [], n_epochs=None, suffix="mine")
    (create,) = job_requests(fake_openai)
    (job,) = fake_openai.jobs.values()
    assert "hyperparameters" not in create.body
    assert create.body["suffix"] == "mine"
    assert job["hyperparameters"]["n_epochs"] == "auto"
    assert model.startswith(f"ft:{BASE}:fake:mine:")


def test_failed_job_names_job_and_server_message(fake_openai: FakeOpenAI, data: Path) -> None:
    lines: list[str] = []
    error = {"code": "invalid_n_examples", "message": "Too few usable examples.", "param": None}
    fake_openai.api_key = KEY
    fake_openai.job_statuses = ["running", "failed"]
    fake_openai.job_error = error
    with pytest.raises(EndpointError) as caught:
        run(fake_openai, data, lines)
    (job_id,) = fake_openai.jobs
    message = str(caught.value)
    assert job_id in message and "failed" in message
    assert "Too few usable examples." in message and "invalid_n_examples" in message
    assert status_lines(lines, job_id) == ["validating_files", "running", "failed"]
    assert KEY not in message and not any(KEY in line for line in lines)


def test_cancelled_job_raises(fake_openai: FakeOpenAI, data: Path) -> None:
    fake_openai.job_statuses = ["queued", "cancelled"]
    with pytest.raises(EndpointError, match=r"ftjob-\w+ cancelled: no reason"):
        run(fake_openai, data, [])


def test_interrupted_poll_resumes_without_a_second_upload(
    fake_openai: FakeOpenAI, data: Path
) -> None:
    first: list[str] = []
    fake_openai.api_key = KEY
    with pytest.raises(EndpointError) as caught:
        run(fake_openai, data, first, max_polls=1)
    (job_id,) = fake_openai.jobs
    assert f"resume with --resume-job {job_id}" in str(caught.value)
    assert "still queued after 1 polls" in str(caught.value)

    second: list[str] = []
    model = run(fake_openai, data, second, resume=job_id)
    assert fake_openai.count("/files") == 1
    assert fake_openai.count("/fine_tuning/jobs") == 1
    assert fake_openai.count(f"/fine_tuning/jobs/{job_id}") == 3  # 1 poll, then 2 to finish
    assert model.endswith(job_id[-8:])
    assert status_lines(first, job_id) == ["validating_files", "queued"]
    assert second[0] == f"resuming fine-tuning job {job_id}"
    assert status_lines(second, job_id) == ["running", "succeeded"]
    assert not any(KEY in line for line in first + second)


def test_resuming_an_unknown_job_fails_clearly(fake_openai: FakeOpenAI, data: Path) -> None:
    with pytest.raises(EndpointError) as caught:
        run(fake_openai, data, [], resume="ftjob-nope")
    message = str(caught.value)
    assert "polling fine-tuning job ftjob-nope failed: NotFoundError (HTTP 404)" in message
    assert "No fine-tuning job found" in message


def test_wrong_key_fails_the_upload_without_showing_it(
    fake_openai: FakeOpenAI, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-WRONG-99")
    fake_openai.api_key = KEY
    with pytest.raises(EndpointError) as caught:
        run(fake_openai, data, [])
    assert "AuthenticationError (HTTP 401)" in str(caught.value)
    assert "WRONG" not in str(caught.value)
    assert fake_openai.jobs == {}


def test_job_without_events_endpoint_still_finishes(
    fake_openai: FakeOpenAI, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    monkeypatch.setattr(fake_openai, "_job_events", lambda job_id, query: (404, {}))
    model = run(fake_openai, data, lines)
    assert model.startswith("ft:")
    assert not any(line.startswith("  ") for line in lines)


def test_bad_epochs_rejected_before_any_request(fake_openai: FakeOpenAI, data: Path) -> None:
    with pytest.raises(EndpointError, match="n_epochs"):
        run(fake_openai, data, [], n_epochs=0)
    assert fake_openai.requests == []


def test_job_from_api_formats_the_error() -> None:
    class Err:
        code, message = "bad", "Broken file."

    class Job:
        id, status, fine_tuned_model, error = "ftjob-1", "failed", None, Err()

    assert FineTuneJob.from_api(Job()) == FineTuneJob(
        "ftjob-1", "failed", None, "Broken file. (bad)"
    )


# --- validation ---------------------------------------------------------------------------------


def test_valid_file_counts_examples(tmp_path: Path) -> None:
    rich = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hi.", "name": "ann"},
            {"role": "assistant", "content": "Hi.", "weight": 0},
            {"role": "user", "content": "Colour?"},
            {"role": "assistant", "content": "Blue.", "weight": 1},
        ]
    }
    path = write(tmp_path / "ok.jsonl", [rich] + [example()] * (MIN_EXAMPLES - 1))
    assert validate_openai_jsonl(path) == MIN_EXAMPLES


def _dict(pair: tuple[str, str]) -> dict[str, str]:
    return {"role": pair[0], "content": pair[1]}


def msgs(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"messages": [_dict(pair) for pair in pairs]}


U, A, S = ("user", "Hi."), ("assistant", "Hello."), ("system", "Be terse.")

BAD_ROWS: list[tuple[str, Any, str]] = [
    ("not json", "{not json", "malformed JSON"),
    ("not an object", "[1, 2]", '"messages" list'),
    ("messages not a list", {"messages": "hi"}, '"messages" list'),
    ("extra top-level key", {**msgs(U, A), "prompt": "x"}, "unrecognised key(s) ['prompt']"),
    ("message not an object", {"messages": ["hi", A]}, "message 1: expected an object"),
    ("unknown role", msgs(("bot", "Hi."), A), "message 1: role 'bot'"),
    ("unknown message key", {"messages": [{**_dict(U), "x": 1}]}, "unrecognised key(s) ['x']"),
    ("empty content", msgs(U, ("assistant", "  ")), "message 2: assistant content"),
    ("content not a string", {"messages": [{"role": "user", "content": 3}, A]}, "non-empty"),
    ("empty name", {"messages": [{"role": "user", "content": "Hi.", "name": ""}, A]}, "name"),
    ("weight on user", {"messages": [{**_dict(U), "weight": 1}, A]}, "assistant messages only"),
    ("weight not 0/1", {"messages": [U, {**_dict(A), "weight": 2}]}, "weight must be 0 or 1"),
    ("weight as bool", {"messages": [U, {**_dict(A), "weight": True}]}, "weight must be 0 or 1"),
    ("all weights 0", {"messages": [U, {**_dict(A), "weight": 0}]}, "weight 0: nothing"),
    ("no assistant", msgs(S, U), "no assistant message"),
    ("system not first", msgs(U, S, A), "message 2: system where assistant"),
    ("two users in a row", msgs(U, U, A), "message 2: user where assistant"),
    ("assistant first", msgs(A, U, A), "message 1: assistant where user"),
    ("two assistants", msgs(S, U, A, A), "message 4: assistant where user"),
]


def _fix(row: Any) -> Any:
    """Spell the shorthand ``(role, content)`` pairs in ``BAD_ROWS`` as message objects."""
    if isinstance(row, dict) and isinstance(row.get("messages"), list):
        fixed = [_dict(m) if isinstance(m, tuple) else m for m in row["messages"]]
        return {**row, "messages": fixed}
    return row


@pytest.mark.parametrize(
    ("row", "message"), [r[1:] for r in BAD_ROWS], ids=[r[0] for r in BAD_ROWS]
)
def test_bad_row_names_file_and_line(tmp_path: Path, row: Any, message: str) -> None:
    rows = [example()] * 3 + [_fix(row)] + [example()] * MIN_EXAMPLES
    path = write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(FinetuneDataError) as caught:
        validate_openai_jsonl(path)
    assert str(caught.value).startswith(f"{path}:4: ")
    assert message in str(caught.value)
    assert caught.value.line == 4


def test_blank_line_inside_the_file_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.jsonl", [example(), ""] + [example()] * MIN_EXAMPLES)
    with pytest.raises(FinetuneDataError, match=r":2: blank line"):
        validate_openai_jsonl(path)


def test_too_few_examples_names_the_count(tmp_path: Path) -> None:
    path = write(tmp_path / "few.jsonl", [example()] * (MIN_EXAMPLES - 1))
    with pytest.raises(FinetuneDataError, match="9 examples; OpenAI requires at least 10") as c:
        validate_openai_jsonl(path)
    assert c.value.line is None and str(c.value).startswith(f"{path}: ")


def test_invalid_file_sends_nothing(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    path = write(tmp_path / "few.jsonl", [example()] * 2)
    with pytest.raises(FinetuneDataError):
        run(fake_openai, path, [])
    assert fake_openai.requests == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FinetuneDataError, match="cannot read"):
        validate_openai_jsonl(tmp_path / "absent.jsonl")
