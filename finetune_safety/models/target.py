"""What the suite asks of a model: a spec names one, a target generates from it; weights load
lazily.

Resolving a spec costs no model load: a target's ``fingerprint`` comes from its files, so a fully
cached run answers from the store without importing torch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from finetune_safety._util.progress import emit
from finetune_safety._util.registry import Registry
from finetune_safety.errors import FinetuneSafetyError, ModelLoadError
from finetune_safety.models.endpoint import Transport
from finetune_safety.models.precision import Precision
from finetune_safety.models.templates import FAMILY_TEMPLATES, Rendered, Template, get_template

#: Recorded by ``finetune`` in a checkpoint: its base and the template it was trained with.
METADATA_FILE = "finetune_safety.json"


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked to test: a model (toy name, directory or hub id), adapter, template."""

    model: str | None = None
    adapter: str | None = None
    template: str | None = None
    system_prompt: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    #: A served model's version as the user names it; part of its fingerprint.
    revision: str | None = None
    #: The spec named ``model`` itself (``{ model = DIR }``, ``--model DIR``): a directory that
    #: holds both a full model and a PEFT adapter is its full model, the adapter left out. A bare
    #: ``DIR`` holding both is refused (see ``models.local.check_model_dir``).
    full_model: bool = False


@dataclass(frozen=True)
class Decoding:
    """Greedy decoding settings; all but ``batch_size`` are part of the generation key.

    ``batch_size = "auto"`` fits the KV cache to the free GPU memory (16 on the CPU). ``dtype``
    is ``auto``, ``float32``, ``bfloat16`` or ``float16``; a local model resolves it to a
    ``Precision`` that the key includes (see ``decoding_key``).
    """

    max_new_tokens: int = 512
    batch_size: int | Literal["auto"] = "auto"
    dtype: str = "auto"
    #: Longest prompt a model is asked, in tokens; None: the model's context is the limit.
    max_prompt_tokens: int | None = None

    def key(self) -> dict[str, object]:
        return {"greedy": True, "max_new_tokens": self.max_new_tokens}


class Target(Protocol):
    """Something that answers rendered prompts; loads its weights when first asked."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def template(self) -> Template: ...

    def generate_batches(
        self, inputs: Sequence[Rendered], decoding: Decoding
    ) -> Iterator[list[tuple[int, str]]]: ...


@dataclass(frozen=True)
class TargetSettings:
    """What a run asks of every target beside its spec.

    ``name`` is the display name (the alias); ``template`` overrides the spec's (the base model
    is asked exactly what each fine-tune is asked); ``transport`` governs served models.
    ``finetune_safety.catalog.resolve`` builds targets; ``register_target`` adds schemes.
    """

    cache_dir: Path
    name: str | None = None
    template: Template | None = None
    transport: Transport | None = None


#: Builds a target from a spec whose model is ``scheme:...``; loads no weights.
TargetFactory = Callable[[ModelSpec, TargetSettings], Target]

#: Targets by the scheme of the spec's model; ``register_target`` and the
#: ``finetune_safety.targets`` entry points add to it. Scheme-less models are toy/HF models.
TARGETS: Registry[TargetFactory] = Registry("target")


def register_target(scheme: str, factory: TargetFactory, *, replace: bool = False) -> None:
    """Make models named ``scheme:...`` resolve through ``factory``."""
    TARGETS.register(scheme, factory, replace=replace)


@runtime_checkable
class Measured(Protocol):
    """A target that can count a prompt's tokens (local models), so a prompt too long for it is
    refused before any generation rather than exhausting memory."""

    @property
    def context_length(self) -> int | None: ...

    def prompt_tokens(self, inputs: Sequence[Rendered], limit: int) -> list[tuple[int, bool]]: ...


class PromptTooLongError(FinetuneSafetyError):
    """A prompt has more tokens than the model's context or ``max_prompt_tokens``."""


def check_prompt_lengths(
    target: Target, ids: Sequence[str], inputs: Sequence[Rendered], decoding: Decoding
) -> None:
    """Refuse, naming the prompt and its token count, any prompt over the model's context or
    ``max_prompt_tokens``: one runaway prompt must not take a whole run down with it.

    Prompts that fit but leave less than ``max_new_tokens`` of the context for the answer get
    one warning for them all, naming how many: an answer that runs past the positions a model
    was built for may come out garbled, or stop the model.
    """
    if not inputs or not isinstance(target, Measured):
        return
    context = target.context_length
    limits = [
        (limit, what)
        for limit, what in (
            (decoding.max_prompt_tokens, "max_prompt_tokens"),
            (context, f"the context of {target.name}"),
        )
        if limit is not None
    ]
    if not limits:
        return
    lowest = min(limit for limit, _ in limits)
    counts = target.prompt_tokens(inputs, lowest)
    for prompt_id, (count, whole) in zip(ids, counts, strict=True):
        for limit, what in limits:
            if count > limit:
                size = f"{count} tokens" if whole else f"{count}+ tokens (counted on a prefix)"
                raise PromptTooLongError(
                    f"prompt {prompt_id!r} is {size}, over {what} ({limit} tokens); "
                    "shorten or drop it, or raise max_prompt_tokens if the model allows"
                )
    if context is not None:
        _warn_past_context(target, ids, [count for count, _ in counts], decoding, context)


def _warn_past_context(
    target: Target, ids: Sequence[str], counts: Sequence[int], decoding: Decoding, context: int
) -> None:
    room = context - decoding.max_new_tokens
    over = [
        (count, prompt_id) for prompt_id, count in zip(ids, counts, strict=True) if count > room
    ]
    if over:
        count, longest = max(over)
        emit(
            f"warning: {len(over)} of {len(ids)} prompt(s) of {target.name} (template "
            f"{target.template.name}) plus max_new_tokens {decoding.max_new_tokens} run past "
            f"its context of {context} tokens (the longest, {longest!r}, is {count} tokens); "
            "their answers may come out garbled past it: lower max_new_tokens or "
            "max_prompt_tokens"
        )


@runtime_checkable
class Prefillable(Protocol):
    """A target whose answer can be begun for it (a prefilling attack, ``prefill_depths``):
    it cuts a harmful answer to its first ``k`` units and continues an assistant turn that a
    ``templates.prefilled`` input starts. ``prefix_unit`` names the unit: ``tokens`` of its
    own tokenizer (local models) or whitespace ``words`` (served models, whose tokenizer is
    not here)."""

    @property
    def prefix_unit(self) -> str: ...

    def prefix(self, text: str, k: int) -> str: ...

    def prefill_refusal(self) -> str | None: ...


def prefill_refusal(target: Target) -> str | None:
    """Why ``target`` cannot be prefilled, or None when it can."""
    if not isinstance(target, Prefillable):
        return f"{target.name} is a {type(target).__name__}, which cannot be prefilled"
    return target.prefill_refusal()


@runtime_checkable
class LocalTarget(Protocol):
    """A target that runs here, in a precision chosen by ``Decoding.dtype`` and the device."""

    def precision(self, decoding: Decoding) -> Precision: ...


def decoding_key(target: Target, decoding: Decoding) -> dict[str, object]:
    """The decoding part of a generation key; a local model's dtype and device kind included,
    so results never cross precisions (bf16 answers depend on batch composition)."""
    key = decoding.key()
    if isinstance(target, LocalTarget):
        key |= target.precision(decoding).key()
    return key


def generate(target: Target, inputs: Sequence[Rendered], decoding: Decoding) -> list[str]:
    """All completions in input order (the batched iterator, collected)."""
    outputs = [""] * len(inputs)
    for batch in target.generate_batches(inputs, decoding):
        for index, text in batch:
            outputs[index] = text
    return outputs


def read_metadata(directory: Path) -> dict[str, object]:
    """The checkpoint metadata ``finetune`` wrote, or nothing for foreign checkpoints."""
    path = directory / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"unreadable checkpoint metadata: {exc}", path) from None
    return data if isinstance(data, dict) else {}


def template_for(spec: ModelSpec, *dirs: Path | None, model: Path | str | None = None) -> Template:
    """The spec's template, else the one the checkpoint was fine-tuned with, else plain.

    A family name (``aoa``) picks its variant by the ``model``'s chat template: a local path's
    files, a hub id's cached files or name, ``toy`` for the toy; served models get GPT-3.5's.
    """
    name = spec.template
    for directory in dirs:
        if name is None and directory is not None and directory.is_dir():
            recorded = read_metadata(directory).get("template")
            name = recorded if isinstance(recorded, str) else None
    kind = "other"
    if name in FAMILY_TEMPLATES and model is not None:
        from finetune_safety.models.gguf import hub_family, model_family

        if isinstance(model, Path):
            kind = model_family(model)
        else:
            kind = model if model == "toy" else hub_family(model)
    return get_template(name or "plain", spec.system_prompt, kind)


def adapter_base(adapter_dir: Path) -> str:
    """The base model a PEFT adapter was trained on, from its ``adapter_config.json``."""
    path = adapter_dir / "adapter_config.json"
    try:
        base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"not a readable PEFT adapter config: {exc}", path) from None
    if not isinstance(base, str) or not base:
        raise ModelLoadError("names no base_model_name_or_path; give the base model", path)
    return base
