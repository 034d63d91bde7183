"""Models behind an OpenAI-compatible API (OpenAI fine-tuned ids, vLLM, Ollama, llama.cpp).

Greedy means temperature 0. Chat templates go to ``/chat/completions`` as messages (the server
applies the model's own chat template); raw text (Alpaca format) goes to ``/completions``. The
fingerprint is the endpoint and the model id: a served model has no files to hash here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from finetune_safety.endpoint import Endpoint, EndpointError, describe_failure, run_concurrently
from finetune_safety.models import Decoding
from finetune_safety.templates import Rendered, Template


class OpenAITarget:
    """One served model; requests run ``transport.concurrency`` at a time, retried by the client."""

    def __init__(self, name: str, endpoint: Endpoint, template: Template) -> None:
        self._name = name
        self.endpoint = endpoint
        self._template = template
        self._client: Any = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def template(self) -> Template:
        return self._template

    @property
    def fingerprint(self) -> str:
        return f"openai:{self.endpoint.identity}"

    def _complete(self, rendered: Rendered, max_tokens: int) -> str:
        import openai

        model = self.endpoint.model
        try:
            if isinstance(rendered, str):
                raw = self._client.completions.create(
                    model=model, prompt=rendered, temperature=0, max_tokens=max_tokens
                )
                return str(raw.choices[0].text or "")
            chat = self._client.chat.completions.create(
                model=model, messages=rendered, temperature=0, max_tokens=max_tokens
            )
            return str(chat.choices[0].message.content or "")
        except openai.OpenAIError as exc:
            raise EndpointError(
                f"{self.endpoint.identity}: generation failed: {describe_failure(exc)} "
                f"(retried up to {self.endpoint.transport.max_retries} times where retryable)"
            ) from None

    def generate_batches(
        self, inputs: Sequence[Rendered], decoding: Decoding
    ) -> Iterator[list[tuple[int, str]]]:
        """Completions as they arrive; one that fails stops the run after the others are kept."""
        if self._client is None:  # one client, made before the threads that share it
            self._client = self.endpoint.client()
        yield from run_concurrently(
            inputs,
            lambda rendered: self._complete(rendered, decoding.max_new_tokens),
            self.endpoint.transport.concurrency,
        )
