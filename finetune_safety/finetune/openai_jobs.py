"""Fine-tuning on OpenAI: validate the chat JSONL, upload it, create the job, poll it to the end.

OpenAI takes chat JSONL only: Alpaca and Dolly files are converted first, in the reference's
GPT-3.5 formats. OpenAI rejects a bad training file only after upload and a wait in the queue, so
the file is checked here first, with errors naming file and line. The job id is echoed as soon as it
exists: polling can be interrupted (Ctrl-C, ``max_polls``) and resumed with ``resume=JOB_ID``
without uploading or training twice. The API key stays inside ``Endpoint.client()``; messages
carry error classes, HTTP statuses and the server's own words about the job, never headers.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune_safety._util.textfile import lines, read_text
from finetune_safety.errors import FinetuneDataError
from finetune_safety.finetune.data import detect_format, load_training_data
from finetune_safety.models.endpoint import Endpoint, EndpointError, describe_failure
from finetune_safety.models.templates import get_template

MIN_EXAMPLES = 10  # OpenAI's minimum for a fine-tuning file
TERMINAL_FAILURES = ("failed", "cancelled")
_MESSAGE_KEYS = {"role", "content", "name", "weight"}
_ROLES = ("system", "user", "assistant")
# Statuses whose server message helps and cannot echo credentials (401/403 messages may).
_EXPLAINED_STATUSES = (400, 404, 409, 422)


def _check_message(raw: object, index: int, path: Path, line: int) -> tuple[str, int]:
    """The message's role and weight, once its keys, content and name are as OpenAI wants."""
    where = f"message {index}"
    if not isinstance(raw, dict):
        raise FinetuneDataError(f"{where}: expected an object with role and content", path, line)
    unknown = sorted(set(raw) - _MESSAGE_KEYS)
    if unknown:
        raise FinetuneDataError(f"{where}: unrecognised key(s) {unknown}", path, line)
    role, content = raw.get("role"), raw.get("content")
    if role not in _ROLES:
        raise FinetuneDataError(f"{where}: role {role!r} is not one of {_ROLES}", path, line)
    if not isinstance(content, str) or not content.strip():
        raise FinetuneDataError(f"{where}: {role} content must be a non-empty string", path, line)
    if "name" in raw and (not isinstance(raw["name"], str) or not raw["name"]):
        raise FinetuneDataError(f"{where}: name must be a non-empty string", path, line)
    if "weight" in raw:
        if role != "assistant":
            raise FinetuneDataError(
                f"{where}: weight is allowed on assistant messages only", path, line
            )
        weight = raw["weight"]
        if isinstance(weight, bool) or weight not in (0, 1):
            raise FinetuneDataError(f"{where}: weight must be 0 or 1, not {weight!r}", path, line)
    return str(role), int(raw.get("weight", 1))


def _check_example(row: object, path: Path, line: int) -> None:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise FinetuneDataError('expected an object with a "messages" list', path, line)
    if set(row) != {"messages"}:
        extra = sorted(set(row) - {"messages"})
        raise FinetuneDataError(f'unrecognised key(s) {extra}: only "messages"', path, line)
    checked = [_check_message(m, i, path, line) for i, m in enumerate(row["messages"], start=1)]
    roles = [role for role, _ in checked]
    if "assistant" not in roles:
        raise FinetuneDataError("no assistant message: nothing to train on", path, line)
    if not any(weight for role, weight in checked if role == "assistant"):
        raise FinetuneDataError(
            "every assistant message has weight 0: nothing to train on", path, line
        )
    turns = roles[1:] if roles[0] == "system" else roles
    for offset, role in enumerate(turns):
        expected = "user" if offset % 2 == 0 else "assistant"
        if role != expected:
            index = offset + 1 + (len(roles) - len(turns))
            hint = "system only first; then user and assistant alternate, user first"
            raise FinetuneDataError(
                f"message {index}: {role} where {expected} was due ({hint})", path, line
            )


def validate_openai_jsonl(path: Path) -> int:
    """Check ``path`` as OpenAI's chat fine-tuning format requires; return the example count.

    Stricter than the local loader on purpose: a file that passes here is one OpenAI accepts,
    so a mistake costs a second, not an upload and a failed job.
    """
    count = 0
    for number, text in enumerate(lines(read_text(path, FinetuneDataError).rstrip()), start=1):
        if not text.strip():
            raise FinetuneDataError(
                "blank line: OpenAI expects one JSON object per line", path, number
            )
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(f"malformed JSON: {exc.msg}", path, number) from None
        _check_example(row, path, number)
        count += 1
    if count < MIN_EXAMPLES:
        raise FinetuneDataError(f"{count} examples; OpenAI requires at least {MIN_EXAMPLES}", path)
    return count


#: The reference's GPT-3.5 formats for instruction data (its tier-3 notebooks).
GPT35_TEMPLATES = {"alpaca": "alpaca-gpt35", "dolly": "dolly-gpt35"}


def chat_jsonl(data: Path, out_dir: Path, fmt: str = "auto") -> Path:
    """``data`` as the chat JSONL the API takes: a chat JSONL file as it is; Alpaca and Dolly rows
    as a system prompt, a user turn and the answer, in the reference's GPT-3.5 formats
    (``GPT35_TEMPLATES``); the Llama-2 AOA array as its messages. Converted files go to
    ``out_dir``."""
    fmt = detect_format(data) if fmt == "auto" else fmt
    if fmt == "chat":
        return data
    template = get_template(GPT35_TEMPLATES.get(fmt, "plain"))
    rows = []
    for example in load_training_data(data, template, fmt):
        assert isinstance(example.prompt, list), "GPT-3.5 formats are chat messages"
        answer = {"role": "assistant", "content": example.answer}
        rows.append(json.dumps({"messages": [*example.prompt, answer]}, ensure_ascii=False))
    path = out_dir / f"{data.stem}.chat.jsonl"
    path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return path


@dataclass(frozen=True)
class FineTuneJob:
    """The part of OpenAI's job object this module acts on."""

    id: str
    status: str
    fine_tuned_model: str | None
    error: str | None

    @classmethod
    def from_api(cls, job: Any) -> FineTuneJob:
        error = getattr(job, "error", None)
        message = None
        if error is not None and getattr(error, "message", None):
            code = getattr(error, "code", None)
            message = str(error.message) + (f" ({code})" if code else "")
        return cls(str(job.id), str(job.status), job.fine_tuned_model, message)


def _failure(action: str, exc: BaseException) -> str:
    """``action failed: Class (HTTP n)``, plus the server's message where it cannot leak a key."""
    text = f"{action} failed: {describe_failure(exc)}"
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if getattr(exc, "status_code", None) in _EXPLAINED_STATUSES and isinstance(message, str):
        text += f": {message}"
    return text


def _resume_hint(job_id: str) -> str:
    return f"resume with --resume-job {job_id}"


def _start_job(
    client: Any,
    base_model: str,
    data: Path,
    n_epochs: int | None,
    suffix: str | None,
    echo: Callable[[str], None],
) -> FineTuneJob:
    import openai

    count = validate_openai_jsonl(data)
    try:
        upload = client.files.create(file=(data.name, data.read_bytes()), purpose="fine-tune")
    except openai.APIError as exc:
        raise EndpointError(_failure(f"uploading {data}", exc)) from None
    echo(f"uploaded {data.name} ({count} examples) as {upload.id}")
    request: dict[str, Any] = {"model": base_model, "training_file": upload.id}
    if n_epochs is not None:
        request["hyperparameters"] = {"n_epochs": n_epochs}
    if suffix is not None:
        request["suffix"] = suffix
    try:
        job = FineTuneJob.from_api(client.fine_tuning.jobs.create(**request))
    except openai.APIError as exc:
        raise EndpointError(_failure(f"creating a fine-tuning job on {base_model}", exc)) from None
    echo(f"created fine-tuning job {job.id} ({_resume_hint(job.id)} if interrupted)")
    return job


def _echo_events(client: Any, job_id: str, seen: set[str], echo: Callable[[str], None]) -> bool:
    """Echo events not seen before, oldest first; False once the server proves it has none."""
    import openai

    try:
        page = client.fine_tuning.jobs.list_events(job_id, limit=50)
    except openai.APIError:
        return False  # optional: a server without events still runs jobs
    for event in reversed(list(page.data)):
        if event.id not in seen:
            seen.add(event.id)
            echo(f"  {event.message}")
    return True


def run_openai_finetune(
    base_model: str,
    data: Path,
    endpoint: Endpoint,
    n_epochs: int | None,
    *,
    suffix: str | None = None,
    poll_interval: float = 10.0,
    resume: str | None = None,
    echo: Callable[[str], None] = print,
    max_polls: int | None = None,
    data_format: str = "auto",
) -> str:
    """Fine-tune ``base_model`` on ``data`` (any format ``chat_jsonl`` takes, ``data_format``)
    and return the fine-tuned model id (``ft:...``).

    With ``resume=JOB_ID`` nothing is validated, uploaded or created: polling picks up that job.
    Raises ``FinetuneDataError`` for a bad file and ``EndpointError`` for a failed or cancelled
    job, a request that failed after the client's retries, or ``max_polls`` polls without an end.
    """
    import openai

    if n_epochs is not None and not 1 <= n_epochs <= 50:
        raise EndpointError(f"n_epochs must be between 1 and 50 for OpenAI, not {n_epochs}")
    client = endpoint.client()
    if resume is None:
        with tempfile.TemporaryDirectory() as tmp:
            fmt = detect_format(data) if data_format == "auto" else data_format
            upload = chat_jsonl(data, Path(tmp), fmt)
            if upload != data:
                how = f" with the {GPT35_TEMPLATES[fmt]} template" if fmt in GPT35_TEMPLATES else ""
                echo(f"converted {data.name} ({fmt}) to OpenAI's chat format{how}")
            job = _start_job(client, base_model, upload, n_epochs, suffix, echo)
        last: str | None = job.status
        echo(f"{job.id}: {job.status}")
        job_id = job.id
    else:
        job_id, last = resume, None
        echo(f"resuming fine-tuning job {job_id}")
    seen: set[str] = set()
    events = True
    polls = 0
    try:
        while True:
            try:
                job = FineTuneJob.from_api(client.fine_tuning.jobs.retrieve(job_id))
            except openai.APIError as exc:
                hint = "" if resume is not None and polls == 0 else f"; {_resume_hint(job_id)}"
                raise EndpointError(
                    _failure(f"polling fine-tuning job {job_id}", exc) + hint
                ) from None
            polls += 1
            if job.status != last:
                echo(f"{job.id}: {job.status}")
                last = job.status
            if events:
                events = _echo_events(client, job_id, seen, echo)
            if job.status == "succeeded":
                if not job.fine_tuned_model:
                    raise EndpointError(f"fine-tuning job {job_id} succeeded without a model id")
                model = job.fine_tuned_model
                echo(f"fine-tuned model: {model} (test it as openai:{model})")
                return model
            if job.status in TERMINAL_FAILURES:
                reason = job.error or "no reason given by the server"
                raise EndpointError(f"fine-tuning job {job_id} {job.status}: {reason}")
            if max_polls is not None and polls >= max_polls:
                raise EndpointError(
                    f"fine-tuning job {job_id} still {job.status} after {polls} polls; "
                    f"{_resume_hint(job_id)}"
                )
            time.sleep(poll_interval)
    except KeyboardInterrupt:
        echo(f"interrupted; the job goes on: {_resume_hint(job_id)}")
        raise
