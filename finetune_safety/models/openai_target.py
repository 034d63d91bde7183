"""Models behind an OpenAI-compatible API (OpenAI fine-tuned ids, vLLM, Ollama, llama.cpp).

Greedy means temperature 0 and top_p 1 (servers that add sampling defaults of their own, such as
llama.cpp's repeat penalty, need them switched off server-side; see the README). Chat templates go
to ``/chat/completions`` as messages (the server applies the model's own chat template); raw text
(Alpaca format) goes to ``/completions``. A served model has no files to hash here, so its
fingerprint is the endpoint, the model id, what the server's ``/v1/models`` says of it, and the
user's optional ``revision``: another model swapped in behind the same name gets fresh answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from finetune_safety.errors import ModelLoadError
from finetune_safety.models.endpoint import (
    Endpoint,
    EndpointError,
    QueueAdvice,
    describe_failure,
    parse,
    redact,
    run_concurrently,
    unusable,
)
from finetune_safety.models.target import (
    Decoding,
    ModelSpec,
    Target,
    TargetSettings,
    register_target,
    template_for,
)
from finetune_safety.models.templates import Rendered, Template, split_prefill

#: The host of OpenAI's own API, whose models cannot be prefilled.
OPENAI_HOST = "api.openai.com"
#: What asks a vLLM server to continue a prefilled assistant turn rather than answer it.
CONTINUE_FINAL_MESSAGE = {"continue_final_message": True, "add_generation_prompt": False}


class OpenAITarget:
    """One served model; requests run ``transport.concurrency`` at a time, retried by the client."""

    def __init__(
        self, name: str, endpoint: Endpoint, template: Template, revision: str | None = None
    ) -> None:
        self._name = name
        self.endpoint = endpoint
        self._template = template
        self.revision = revision
        self._client: Any = None
        self._fingerprint: str | None = None
        self._advice = QueueAdvice(endpoint)

    @property
    def name(self) -> str:
        return self._name

    @property
    def template(self) -> Template:
        return self._template

    @property
    def fingerprint(self) -> str:
        """Endpoint and model id, plus a digest of the server's entry for the model and the
        revision; asks the server once."""
        if self._fingerprint is None:
            served = {"entry": self.served_entry(), "revision": self.revision}
            text = json.dumps(served, sort_keys=True, separators=(",", ":"))
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            self._fingerprint = f"openai:{self.endpoint.identity}#{digest}"
        return self._fingerprint

    def served_entry(self) -> dict[str, Any] | None:
        """The ``/v1/models`` entry for this model (id, created, owned_by, root, path, meta...),
        or None where the server does not list it. A ``created`` that is the time of the
        request (llama.cpp, vLLM) says nothing of the model and is left out."""
        import openai

        try:
            listed = self._ensure_client().models.list()
            entries = [e.model_dump() for e in listed.data]
        except openai.OpenAIError as exc:
            why = unusable(self.endpoint, exc, "GET /models")
            raise EndpointError(
                f"{self.endpoint.identity}: {why}"
                if why
                else f"{self.endpoint.identity}: cannot list the served models (GET /models), "
                f"which identify what answers: {describe_failure(exc)}"
            ) from None
        entry = next((e for e in entries if e.get("id") == self.endpoint.model), None)
        if entry is None:
            return None
        entry = {k: v for k, v in entry.items() if k != "object" and v is not None}
        created = entry.get("created")
        volatile = entry.get("owned_by") in ("llamacpp", "vllm")
        if volatile or (isinstance(created, int | float) and abs(time.time() - created) < 300):
            entry.pop("created", None)
        return entry

    def _ensure_client(self) -> Any:
        if self._client is None:  # one client, made before the threads that share it
            self._client = self.endpoint.client()
        return self._client

    #: A served model's tokenizer is not here: prefixes are counted in whitespace words.
    prefix_unit = "words"

    def prefix(self, text: str, k: int) -> str:
        """The first ``k`` whitespace-separated words of ``text``, its spacing kept."""
        found = re.match(rf"\s*(?:\S+\s*){{0,{k}}}", text)
        return found.group(0).rstrip() if found else ""

    def prefill_refusal(self) -> str | None:
        """OpenAI's own API takes no unfinished assistant turn (and its fine-tunes no
        ``/completions``), so its models cannot be prefilled; other servers are asked to
        continue the last message (vLLM's ``continue_final_message``)."""
        if urlsplit(self.endpoint.base_url).hostname == OPENAI_HOST:
            return (
                f"{self.name} is served by {OPENAI_HOST}, whose chat API cannot continue a "
                "prefilled assistant turn"
            )
        return None

    def _complete(self, rendered: Rendered, max_tokens: int) -> str:
        import openai

        model = self.endpoint.model
        greedy: dict[str, Any] = {"temperature": 0, "top_p": 1, "max_tokens": max_tokens}
        try:
            if isinstance(rendered, str):
                raw = self._client.completions.create(model=model, prompt=rendered, **greedy)
                text = str(raw.choices[0].text or "")
            else:
                head, prefix = split_prefill(rendered)
                if prefix:  # the server continues a last assistant message
                    greedy["extra_body"] = CONTINUE_FINAL_MESSAGE
                    rendered = [*head, {"role": "assistant", "content": prefix}]
                chat = self._client.chat.completions.create(
                    model=model, messages=rendered, **greedy
                )
                text = str(chat.choices[0].message.content or "")
            self._advice.success()
            return text
        except openai.OpenAIError as exc:
            self._advice.failure(exc)
            raise EndpointError(
                f"{self.endpoint.identity}: generation failed: {describe_failure(exc)} "
                f"(retried up to {self.endpoint.transport.max_retries} times where retryable)"
            ) from None

    def generate_batches(
        self, inputs: Sequence[Rendered], decoding: Decoding
    ) -> Iterator[list[tuple[int, str]]]:
        """Completions as they arrive; one that fails stops the run after the others are kept."""
        self._ensure_client()
        yield from run_concurrently(
            inputs,
            lambda rendered: self._complete(rendered, decoding.max_new_tokens),
            self.endpoint.transport.concurrency,
        )


def _openai_target(spec: ModelSpec, settings: TargetSettings) -> Target:
    """A model served by an OpenAI-compatible endpoint (vLLM, TGI, OpenAI itself)."""
    if spec.adapter is not None:
        raise ModelLoadError("a served model takes no adapter", spec.model)
    endpoint = parse(str(spec.model), settings.transport)
    display = str(redact(settings.name or spec.model))  # a name may be the spec itself
    return OpenAITarget(display, endpoint, settings.template or template_for(spec), spec.revision)


register_target("openai", _openai_target)
