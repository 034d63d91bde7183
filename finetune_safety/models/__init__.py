"""Models under test: a spec names one, a target generates from it; weights load lazily.

Resolving a spec costs no model load: a target's ``fingerprint`` comes from its files, so a fully
cached run answers from the store without importing torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from finetune_safety.endpoint import Transport, is_endpoint, parse, redact
from finetune_safety.errors import ModelLoadError
from finetune_safety.templates import FAMILY_TEMPLATES, Rendered, Template, get_template

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


@dataclass(frozen=True)
class Decoding:
    """Greedy decoding settings; all but ``batch_size`` are part of the generation key."""

    max_new_tokens: int = 512
    batch_size: int = 16

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
        raise ModelLoadError(f"{path}: unreadable checkpoint metadata: {exc}") from None
    return data if isinstance(data, dict) else {}


def _template_for(spec: ModelSpec, *dirs: Path | None, model: Path | str | None = None) -> Template:
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
        raise ModelLoadError(f"{path}: not a readable PEFT adapter config: {exc}") from None
    if not isinstance(base, str) or not base:
        raise ModelLoadError(f"{path}: names no base_model_name_or_path; give the base model")
    return base


def _display_name(spec: ModelSpec, model: str) -> str:
    """What the user named: the model, the adapter, or ``model+adapter`` for both."""
    if spec.adapter is None:
        return spec.model or model
    return spec.adapter if spec.model is None else f"{spec.model}+{Path(spec.adapter).name}"


def resolve(
    spec: ModelSpec,
    cache_dir: Path,
    name: str | None = None,
    template: Template | None = None,
    transport: Transport | None = None,
) -> Target:
    """A target for ``spec``; toy names build the toy models into ``cache_dir`` on first use.

    ``template`` overrides the spec's, e.g. to ask a base model exactly what its fine-tune is asked.
    ``transport`` sets timeouts, retries and concurrency for ``openai:`` models.
    """
    from finetune_safety.models.hf import HFTarget
    from finetune_safety.toy import BASE, toy_checkpoint

    if is_endpoint(spec.model):
        from finetune_safety.models.openai_target import OpenAITarget

        if spec.adapter is not None:
            raise ModelLoadError(f"{spec.model}: a served model takes no adapter")
        endpoint = parse(str(spec.model), transport)
        display = name or str(redact(spec.model))
        return OpenAITarget(display, endpoint, template or _template_for(spec))

    adapter_dir = Path(spec.adapter) if spec.adapter else None
    if adapter_dir is not None and not (adapter_dir / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"{adapter_dir}: not a PEFT adapter directory (no adapter_config.json)"
        )
    model = spec.model or (adapter_base(adapter_dir) if adapter_dir is not None else BASE)
    toy = toy_checkpoint(model, cache_dir)
    model_dir: Path | None = None
    if toy is not None:
        if adapter_dir is not None and toy.adapter is not None:
            raise ModelLoadError(f"an adapter cannot be added to the toy fine-tune {model!r}")
        model_dir, adapter_dir = toy.base, adapter_dir or toy.adapter
    elif Path(model).exists():
        model_dir = Path(model)
    family: Path | str = "toy" if toy is not None else model_dir or model
    return HFTarget(
        name=name or _display_name(spec, model),
        model=str(model_dir) if model_dir is not None else model,
        adapter=adapter_dir,
        template=template or _template_for(spec, adapter_dir, model_dir, model=family),
        allow_pickle=spec.allow_pickle,
        trust_remote_code=spec.trust_remote_code,
    )
