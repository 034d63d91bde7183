"""Judging items on an OpenAI-compatible server, the part every served judge shares: a bounded
number of requests in flight, verdicts back in input order, and a request that still fails after
the client's retries as an error verdict (never a pass)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from finetune_safety.models.endpoint import QueueAdvice, describe_failure, run_concurrently
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
