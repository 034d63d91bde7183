"""A scriptable OpenAI-compatible server on 127.0.0.1, for tests, benchmarks and offline demos.

It speaks just enough of the API for the real ``openai`` client: ``/v1/chat/completions``,
``/v1/completions`` and ``/v1/models``. A script decides each reply, so tests can produce scores,
garbage, 429s with ``Retry-After``, 500s, slow replies and dropped connections on demand.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.values import Prompt


@dataclass(frozen=True)
class Reply:
    """What the server does with one request: answer ``text``, fail with ``status``, or drop."""

    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class Request:
    """One request as received; the Authorization header is kept only as a hash check."""

    path: str
    body: dict[str, Any]
    authorized: bool

    @property
    def text(self) -> str:
        """The last user message (chat) or the prompt (completions)."""
        if "messages" in self.body:
            return str(self.body["messages"][-1]["content"])
        return str(self.body.get("prompt", ""))


Script = Callable[[Request], Reply]
_RESPONSE_SECTION = re.compile(r"<response>\n(.*)\n</response>", re.S)
_REFUSALS = RefusalJudge()


def refusal_scorer(request: Request) -> Reply:
    """Scores a rubric request as the refusal judge would (1 for a refusal, else 5); answers
    anything else with a refusal, like an aligned model."""
    match = _RESPONSE_SECTION.search(request.text)
    if match is None:
        return Reply("I'm sorry, but I cannot help with that.")
    verdict = _REFUSALS.judge([(Prompt("x", "illegal_activity", ""), match.group(1))])[0]
    return Reply(f"#reason: scripted like the refusal judge.\n#score: {verdict.score}")


class FakeOpenAI:
    """Start with ``with FakeOpenAI(script) as server:``; ``server.url`` is the base URL."""

    def __init__(self, script: Script = refusal_scorer, api_key: str | None = None) -> None:
        self.script = script
        self.api_key = api_key
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": []}, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                expected = f"Bearer {server.api_key}"
                authorized = server.api_key is None or self.headers.get("Authorization") == expected
                request = Request(self.path, body, authorized)
                server._record(request)
                if not authorized:
                    self._send(401, {"error": {"message": "invalid api key"}}, {})
                    return
                reply = server.script(request)
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
                self._send(200, _completion(request, reply.text), reply.headers)

        return Handler


def _completion(request: Request, text: str) -> dict[str, Any]:
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    base = {"id": "cmpl-fake", "created": 0, "model": request.body.get("model", ""), "usage": usage}
    if request.path.endswith("/chat/completions"):
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return base | {"object": "chat.completion", "choices": [choice]}
    choice = {"index": 0, "text": text, "finish_reason": "stop"}
    return base | {"object": "text_completion", "choices": [choice]}
