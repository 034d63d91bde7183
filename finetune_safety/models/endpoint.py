"""OpenAI-compatible endpoints: ``openai:MODEL`` or ``openai:MODEL@URL`` specs and their clients.

Retries and timeouts are the ``openai`` client's own (exponential backoff with jitter on 429,
5xx, timeouts and connection errors, honouring ``Retry-After``); what it lacks, a bound on
concurrent requests, is a thread pool here. The API key never leaves the client: identities,
fingerprints and messages use the model and the URL without credentials.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from finetune_safety._util.progress import emit
from finetune_safety.errors import FinetuneSafetyError

PREFIX = "openai:"
DEFAULT_URL = "https://api.openai.com/v1"
T = TypeVar("T")
R = TypeVar("R")


class EndpointError(FinetuneSafetyError):
    """An endpoint spec is malformed, or a request failed after the client's retries."""


@dataclass(frozen=True)
class Transport:
    """Per-request timeout (s), the client's retry bound, and requests in flight at once."""

    timeout: float = 60.0
    max_retries: int = 4
    concurrency: int = 8


@dataclass(frozen=True)
class Endpoint:
    """Where requests go. The key comes from ``$OPENAI_API_KEY`` when the client is made, so it
    is never part of a spec, an identity, a ``repr`` or a message."""

    model: str
    base_url: str
    transport: Transport = Transport()

    def __repr__(self) -> str:
        return f"Endpoint(model={self.model!r}, url={self.identity_url!r})"

    @property
    def identity_url(self) -> str:
        """The base URL without user info, query or trailing slash."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))

    @property
    def identity(self) -> str:
        return f"{self.identity_url}#{self.model}"

    def client(self) -> Any:
        """A configured ``openai.OpenAI`` client (imported here: the plugin must stay light)."""
        import openai

        _redact_http_logs()
        # A local server needs no key, but the client insists on one.
        key = os.environ.get("OPENAI_API_KEY")
        parts = urlsplit(self.base_url)
        netloc = parts.netloc
        if key and parts.username is not None:
            # httpx turns URL credentials into Basic auth, which would replace the Bearer key.
            netloc = netloc.rpartition("@")[2]
        # A query (``?api-key=...``) goes with every request, not into the middle of its path.
        base_url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        return openai.OpenAI(
            api_key=key or "not-needed",
            base_url=base_url,
            default_query=dict(parse_qsl(parts.query)) or None,
            timeout=self.transport.timeout,
            max_retries=self.transport.max_retries,
        )


def is_endpoint(spec: str | None) -> bool:
    return spec is not None and spec.startswith(PREFIX)


def parse(spec: str, transport: Transport | None = None, *, prefix: str = PREFIX) -> Endpoint:
    """``openai:MODEL`` (URL from ``$OPENAI_BASE_URL`` or OpenAI's) or ``openai:MODEL@URL``;
    another ``prefix`` (``llama-guard:``) for the served judges that speak the same API."""
    body = spec.removeprefix(prefix)
    model, at, url = body.partition("@")
    if not spec.startswith(prefix) or not model:
        raise EndpointError(f"{spec!r}: expected {prefix}MODEL or {prefix}MODEL@URL")
    if at and not url.startswith(("http://", "https://")):
        raise EndpointError(f"{spec!r}: the URL after '@' must start with http:// or https://")
    base_url = url if at else os.environ.get("OPENAI_BASE_URL") or DEFAULT_URL
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:
        raise EndpointError(f"{redact(spec)}: invalid URL {redact(base_url)}: {exc}") from None
    if not parts.hostname:
        raise EndpointError(f"{redact(spec)}: the URL {redact(base_url)} names no host")
    return Endpoint(model=model, base_url=base_url, transport=transport or Transport())


#: Everything up to the authority's last ``@``, so a password holding ``@`` goes whole.
_USERINFO = re.compile(r"//[^/?#\s]*@")
_QUERY_SECRET = re.compile(
    r"([?&;](?:api[-_]?key|key|token|access[-_]?token|secret|password|sig)=)[^&;#\s]*", re.I
)


@overload
def redact(spec: str) -> str: ...
@overload
def redact(spec: str | None) -> str | None: ...
def redact(spec: str | None) -> str | None:
    """A spec fit to print: ``user:password@`` in a URL becomes ``***@`` and query-string
    secrets (``api-key=``, ``key=``, ``token=``, ...) become ``***``."""
    if spec is None:
        return None
    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub("//***@", spec))


class QueueAdvice:
    """Says once, per endpoint, when timeouts look like a server answering one request at a
    time (llama.cpp's default): some requests succeed, others time out queued behind them."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._succeeded = False
        self._said = False
        self._lock = threading.Lock()

    def success(self) -> None:
        self._succeeded = True

    def failure(self, exc: BaseException) -> None:
        import openai

        concurrency = self.endpoint.transport.concurrency
        timed_out = isinstance(exc, openai.APITimeoutError)
        with self._lock:
            if not timed_out or concurrency < 2 or not self._succeeded or self._said:
                return
            self._said = True
        emit(
            f"{self.endpoint.identity_url}: requests time out after others succeeded, with "
            f"{concurrency} in flight; a server that handles one request at a time (llama.cpp "
            "without --parallel, a single-slot server) makes them queue: lower concurrency "
            "(concurrency = 1 in [tool.finetune_safety], --concurrency 1) or raise "
            "request_timeout"
        )


class _RedactingFilter(logging.Filter):
    """HTTP clients log each request's URL (query included) at INFO: redact it on the way."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, None
        return True


_HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "openai._base_client")


def _redact_http_logs() -> None:
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
            logger.addFilter(_RedactingFilter())


def describe_failure(exc: BaseException) -> str:
    """An error's class and HTTP status: enough to act on, and never the request's headers."""
    status = getattr(exc, "status_code", None)
    return type(exc).__name__ + (f" (HTTP {status})" if status else "")


def unusable(endpoint: Endpoint, exc: BaseException, request: str) -> str | None:
    """Why nothing can be asked of ``endpoint``, from a ``request`` that failed after the
    client's retries: no answer, or a refused key; None for a failure that says something else."""
    import openai

    if isinstance(exc, openai.APIConnectionError):
        retries = endpoint.transport.max_retries
        tries = f"{retries} retr{'y' if retries == 1 else 'ies'}"
        return f"does not answer {request} ({describe_failure(exc)} after {tries})"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return f"refuses the API key on {request} ({describe_failure(exc)})"
    return None


def run_concurrently(
    items: Sequence[T], call: Callable[[T], R], concurrency: int
) -> Iterator[list[tuple[int, R]]]:
    """Yield ``(index, result)`` pairs as requests finish, at most ``concurrency`` in flight.

    Results arrive in completion order so callers can store each as soon as it exists; a
    failure is raised after every request already running has finished and been yielded.
    """
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        pending: dict[Future[R], int] = {}
        queue = iter(range(len(items)))
        failure: BaseException | None = None
        for index in queue:
            pending[pool.submit(call, items[index])] = index
            if len(pending) >= concurrency:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            ready: list[tuple[int, R]] = []
            for future in done:
                index = pending.pop(future)
                if future.exception() is not None:
                    failure = failure or future.exception()
                else:
                    ready.append((index, future.result()))
            if failure is None:
                for index in queue:
                    pending[pool.submit(call, items[index])] = index
                    if len(pending) >= concurrency:
                        break
            if ready:
                yield ready
        if failure is not None:
            raise failure
