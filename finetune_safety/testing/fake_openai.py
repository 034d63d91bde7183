"""A scriptable OpenAI-compatible server on 127.0.0.1, for tests, benchmarks and offline demos.

It speaks just enough of the API for the real ``openai`` client: ``/v1/chat/completions``,
``/v1/completions`` and ``/v1/models``. A script decides each reply, so tests can produce scores,
garbage, 429s with ``Retry-After``, 500s, slow replies and dropped connections on demand. A
reply's ``tokens`` come back as logprobs when the request asks for them: in the chat shape, or
in the legacy completions shape (``/v1/completions``, or ``legacy_logprobs`` for chat, as older
llama-cpp-python servers sent them); see ``testing.tokens``.

Fine-tuning is served from memory: ``POST /v1/files`` (multipart upload), ``POST
/v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}`` and its ``/events``. Each retrieve
advances the job one step along ``job_statuses`` (queued, running, succeeded by default), so a
test scripts a failed or cancelled job, or a slow one to interrupt and resume.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.testing.fake_jobs import (
    JOB_STATUSES,
    FineTuningJobs,
    multipart,
)
from finetune_safety.testing.tokens import Token, chat_logprobs, legacy_logprobs
from finetune_safety.values import Prompt


@dataclass(frozen=True)
class Reply:
    """What the server does with one request: answer ``text``, fail with ``status``, or drop.
    ``tokens`` are the answer's logprobs, sent when asked for (``text`` defaults to them)."""

    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    tokens: tuple[Token, ...] = ()
    legacy_logprobs: bool = False


@dataclass(frozen=True)
class Request:
    """One request as received; the Authorization header is kept only as a hash check."""

    path: str
    body: dict[str, Any]
    authorized: bool
    method: str = "POST"

    @property
    def text(self) -> str:
        """The last user message (chat) or the prompt (completions)."""
        if "messages" in self.body:
            return str(self.body["messages"][-1]["content"])
        return str(self.body.get("prompt", ""))


Script = Callable[[Request], Reply]
_JOB_PATH = re.compile(r"/fine_tuning/jobs/([^/]+)(/events)?$")
_RESPONSE_SECTION = re.compile(r"<response>\n(.*)\n</response>", re.S)
_INSTRUCTION_SECTION = re.compile(r"<instruction>\n(.*?)\n</instruction>", re.S)
_REFUSALS = RefusalJudge()


def refusal_scorer(request: Request) -> Reply:
    """Scores a rubric request as the refusal judge would (1 for a refusal, else 5); answers
    anything else with a refusal, like an aligned model."""
    match = _RESPONSE_SECTION.search(request.text)
    if match is None:
        return Reply("I'm sorry, but I cannot help with that.")
    verdict = _REFUSALS.judge([(Prompt("x", "illegal_activity", ""), match.group(1))])[0]
    return Reply(f"#reason: scripted like the refusal judge.\n#score: {verdict.score}")


class FakeOpenAI(FineTuningJobs):
    """Start with ``with FakeOpenAI(script) as server:``; ``server.url`` is the base URL."""

    def __init__(
        self,
        script: Script = refusal_scorer,
        api_key: str | None = None,
        *,
        job_statuses: Sequence[str] = JOB_STATUSES,
        job_error: dict[str, Any] | None = None,
        models: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.script = script
        self.api_key = api_key
        #: What ``GET /v1/models`` lists (entries as a server reports them); settable.
        self.models = [dict(m) for m in models]
        #: How ``GET /v1/models`` is answered instead (a status, a drop, a delay); settable.
        self.models_reply: Reply | None = None
        self.requests: list[Request] = []
        #: Each ``GET /v1/models`` received (kept apart: ``requests`` holds the work asked).
        self.listings: list[Request] = []
        self._lock = threading.Lock()
        self._init_jobs(job_statuses, job_error)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll makes shutdown quick: tests start and stop many servers.
        serve = {"poll_interval": 0.02}
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs=serve, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, path_suffix: str = "/chat/completions") -> int:
        with self._lock:
            return sum(r.path.endswith(path_suffix) for r in self.requests)

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: tests read ``server.requests`` instead."""

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                # A client that gave up first (a timeout test) has nothing left to hear.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def _admit(self, request: Request) -> bool:
                """Record the request; answer 401 and return False when the key is wrong."""
                server._record(request)
                if not request.authorized:
                    self._send(401, {"error": {"message": "invalid api key"}}, {})
                return request.authorized

            def _authorized(self) -> bool:
                expected = f"Bearer {server.api_key}"
                return server.api_key is None or self.headers.get("Authorization") == expected

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                match = _JOB_PATH.search(parts.path)
                if match is None:
                    with server._lock:
                        server.listings.append(Request(parts.path, {}, self._authorized(), "GET"))
                    if not self._authorized():
                        self._send(401, {"error": {"message": "invalid api key"}}, {})
                        return
                    listing = {"object": "list", "data": list(server.models)}
                    self._answer(server.models_reply or Reply(), lambda: listing)
                    return
                query = dict(parse_qsl(parts.query))
                if not self._admit(Request(parts.path, query, self._authorized(), "GET")):
                    return
                job_id, events = match.groups()
                if events:
                    self._send(*server._job_events(job_id, query), {})
                else:
                    self._send(*server._retrieve_job(job_id), {})

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                if path.endswith(("/files", "/fine_tuning/jobs")):
                    self._fine_tuning_post(path)
                    return
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                expected = f"Bearer {server.api_key}"
                authorized = server.api_key is None or self.headers.get("Authorization") == expected
                request = Request(urlsplit(self.path).path, body, authorized)
                server._record(request)
                if not authorized:
                    self._send(401, {"error": {"message": "invalid api key"}}, {})
                    return
                reply = server.script(request)
                self._answer(reply, lambda: _completion(request, reply))

            def _answer(self, reply: Reply, payload: Callable[[], dict[str, Any]]) -> None:
                """As ``reply`` says: after its delay, drop the connection, fail, or send."""
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                if reply.status != 200:
                    error = {"error": {"message": f"scripted {reply.status}", "type": "scripted"}}
                    self._send(reply.status, error, reply.headers)
                    return
                self._send(200, payload(), reply.headers)

            def _fine_tuning_post(self, path: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if path.endswith("/files"):
                    fields = multipart(self.headers.get("Content-Type", ""), raw)
                    filename, data = fields.get("file", (None, b""))
                    purpose = fields.get("purpose", (None, b""))[1].decode()
                    seen = {"filename": filename, "purpose": purpose, "bytes": len(data)}
                    if self._admit(Request(path, seen, self._authorized())):
                        self._send(*server._upload(fields), {})
                    return
                body = json.loads(raw or b"{}")
                if self._admit(Request(path, body, self._authorized())):
                    self._send(*server._create_job(body), {})

        return Handler


def unreachable_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (a port bound, then released): a server
    that does not answer, refused at once, for tests of what a run does without it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _completion(request: Request, reply: Reply) -> dict[str, Any]:
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    base = {"id": "cmpl-fake", "created": 0, "model": request.body.get("model", ""), "usage": usage}
    text = reply.text or "".join(t.text for t in reply.tokens)
    chat = request.path.endswith("/chat/completions")
    asked = request.body.get("logprobs") is True if chat else request.body.get("logprobs")
    logprobs = None
    if asked and reply.tokens:
        legacy = not chat or reply.legacy_logprobs
        logprobs = (legacy_logprobs if legacy else chat_logprobs)(reply.tokens)
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": logprobs}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
        return base | {"object": "chat.completion", "choices": [choice]}
    return base | {"object": "text_completion", "choices": [choice | {"text": text}]}


def rubric_instruction(request: Request) -> str | None:
    """The instruction a rubric judge's request asks to score (its first message holds the
    rubric, re-asks append to it); None for a request that is not a rubric's."""
    messages = request.body.get("messages")
    match = _INSTRUCTION_SECTION.search(str(messages[0]["content"])) if messages else None
    return match.group(1) if match else None


class InFlight:
    """A script that holds each request ``hold`` seconds, then lets ``script`` answer it, and
    records the most requests the server held at once (``peak``): for tests of a client's
    concurrency bound.

    With ``gather=N`` the first requests also wait until N are in flight together (at most
    ``GATHER_WAIT`` seconds), so a client that sends N at once reaches a peak of exactly N however
    slow the machine, and a client that sends more shows them during ``hold``."""

    #: How long requests wait for ``gather`` companions: only a guard against a client that
    #: never sends that many.
    GATHER_WAIT = 30.0

    def __init__(self, script: Script = refusal_scorer, hold: float = 0.1, gather: int = 0) -> None:
        self.script = script
        self.hold = hold
        self.gather = gather
        self.peak = 0
        self._now = 0
        self._changed = threading.Condition()

    def __call__(self, request: Request) -> Reply:
        with self._changed:
            self._now += 1
            self.peak = max(self.peak, self._now)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self.peak >= self.gather, self.GATHER_WAIT)
        time.sleep(self.hold)
        with self._changed:
            self._now -= 1
        return self.script(request)
