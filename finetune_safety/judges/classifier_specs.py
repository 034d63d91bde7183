"""``llama-guard:``, ``harmbench:`` and ``wildguard:`` specs -> classifier judges.

``SCHEME:MODEL@URL`` is a classifier served by an OpenAI-compatible server (vLLM, TGI,
llama.cpp, Ollama); ``SCHEME:PATH`` (a directory, GGUF file or hub id) runs it here through
transformers, loaded like the models under test (``JudgeSettings.model``). Building the judge
loads nothing and asks no server.
"""

from __future__ import annotations

from collections.abc import Callable

from finetune_safety.errors import JudgeError
from finetune_safety.judges.classifier import (
    Classifier,
    LocalClassifierJudge,
    ServedClassifierJudge,
    TokenScorer,
    local_model,
)
from finetune_safety.judges.harmbench import Clip, HarmBench, served_clip
from finetune_safety.judges.llama_guard import LlamaGuard
from finetune_safety.judges.wildguard import WildGuard
from finetune_safety.models import Target
from finetune_safety.models.endpoint import Transport, parse, redact

#: The classifier schemes this module builds.
SCHEMES = ("llama-guard", "harmbench", "wildguard")


def _classifier(
    scheme: str, model: str, threshold: float, target: Callable[[], TokenScorer] | None
) -> Classifier:
    """The protocol; ``target`` is the local model (None: served as ``model``)."""
    if scheme == "llama-guard":
        return LlamaGuard(threshold)
    if scheme == "wildguard":
        return WildGuard()
    if target is None:
        return HarmBench(model, lambda: served_clip(model))
    local = target
    return HarmBench(model, lambda: Clip("tokenizer", lambda: local().load_tokenizer()))


def make_classifier_judge(
    spec: str,
    transport: Transport,
    threshold: float,
    model: Callable[[str], Target] | None,
) -> ServedClassifierJudge | LocalClassifierJudge:
    """The judge a classifier spec names (``JudgeSettings`` gives the rest); cheap until it
    first judges."""
    scheme, _, body = spec.partition(":")
    name, at, _url = body.partition("@")
    if scheme not in SCHEMES or not name.strip():
        raise JudgeError(
            f"judge {redact(spec)!r}: expected {scheme}:MODEL@URL (a served classifier) or "
            f"{scheme}:PATH (a local one)"
        )
    if at:
        endpoint = parse(spec, transport, prefix=f"{scheme}:")
        return ServedClassifierJudge(_classifier(scheme, endpoint.model, threshold, None), endpoint)
    if model is None:
        raise JudgeError(
            f"judge {spec!r}: JudgeSettings.model is not set; give catalog.judge_model(cache_dir)"
        )
    target = local_model(spec, name, model)
    return LocalClassifierJudge(_classifier(scheme, name, threshold, target), target)
