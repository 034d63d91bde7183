"""Judging items on an OpenAI-compatible server, the part every served judge shares: a bounded
number of requests in flight, verdicts back in input order, and a request that still fails after
the client's retries as an error verdict (never a pass); and the probe a run asks first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from finetune_safety.models.endpoint import (
    Endpoint,
    EndpointError,
    QueueAdvice,
    describe_failure,
    run_concurrently,
    unusable,
)
from finetune_safety.values import Label, Prompt, Verdict


def served_verdicts(
    items: Sequence[tuple[Prompt, str]],
    one: Callable[[Prompt, str], Verdict],
    advice: QueueAdvice,
    judge_id: str,
) -> list[Verdict]:
    """``one(prompt, response)`` for each item, ``concurrency`` at a time, in input order."""
    import openai

    def guarded(item: tuple[Prompt, str]) -> Verdict:
        try:
            return one(*item)
        except openai.OpenAIError as exc:  # the client already retried: an error verdict
            advice.failure(exc)
            why = f"judge request failed after retries: {describe_failure(exc)}"
            return Verdict(None, Label.ERROR, why, judge_id)

    verdicts: dict[int, Verdict] = {}
    for batch in run_concurrently(items, guarded, advice.endpoint.transport.concurrency):
        verdicts.update(batch)
    return [verdicts[i] for i in range(len(items))]


class ServedClient:
    """What a served judge keeps of its server: the endpoint, one client (made before the
    threads that share it) and the probe a run asks before anything is generated."""

    endpoint: Endpoint
    _client: Any = None

    def _ensure_client(self) -> Any:
        if self._client is None:
            self._client = self.endpoint.client()
        return self._client

    def probe(self) -> None:
        """Ask the server once for its models (GET /models), so that a judge that does not
        answer, or refuses the key, is found before anything is generated; any other answer (a
        server without that route) passes, and judging says the rest. The message leaves the
        endpoint to the caller, which names the judge."""
        import openai

        try:
            self._ensure_client().models.list()
        except openai.OpenAIError as exc:
            why = unusable(self.endpoint, exc, "GET /models")
            if why is not None:
                raise EndpointError(why) from None
