"""OpenAI-compatible endpoints: ``openai:MODEL`` or ``openai:MODEL@URL`` specs and their clients.

Retries and timeouts are the ``openai`` client's own (exponential backoff with jitter on 429,
5xx, timeouts and connection errors, honouring ``Retry-After``); what it lacks, a bound on
concurrent requests, is a thread pool here. The API key never leaves the client: identities,
fingerprints and messages use the model and the URL without credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

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

        # A local server needs no key, but the client insists on one.
        key = os.environ.get("OPENAI_API_KEY") or "not-needed"
        return openai.OpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=self.transport.timeout,
            max_retries=self.transport.max_retries,
        )


def is_endpoint(spec: str | None) -> bool:
    return spec is not None and spec.startswith(PREFIX)


def parse(spec: str, transport: Transport | None = None) -> Endpoint:
    """``openai:MODEL`` (URL from ``$OPENAI_BASE_URL`` or OpenAI's) or ``openai:MODEL@URL``."""
    body = spec.removeprefix(PREFIX)
    model, at, url = body.partition("@")
    if not spec.startswith(PREFIX) or not model:
        raise EndpointError(f"{spec!r}: expected openai:MODEL or openai:MODEL@URL")
    if at and not url.startswith(("http://", "https://")):
        raise EndpointError(f"{spec!r}: the URL after '@' must start with http:// or https://")
    base_url = url if at else os.environ.get("OPENAI_BASE_URL") or DEFAULT_URL
    return Endpoint(model=model, base_url=base_url, transport=transport or Transport())


_USERINFO = re.compile(r"//[^/@\s]+@")


def redact(spec: str | None) -> str | None:
    """A spec fit to print: any ``user:password@`` in a URL becomes ``***@``."""
    return None if spec is None else _USERINFO.sub("//***@", spec)


def describe_failure(exc: BaseException) -> str:
    """An error's class and HTTP status: enough to act on, and never the request's headers."""
    status = getattr(exc, "status_code", None)
    return type(exc).__name__ + (f" (HTTP {status})" if status else "")


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
