"""Model specs and recipes from the table or the command line: what a checkpoint alias names.

A spec is checked where it is read (paths against the rootdir or the working directory, hub ids,
templates, served endpoints), so a typo is one ``ConfigError`` naming its key before any work.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetune_safety.config.checks import ConfigError, check, path_in, positive_int, text
from finetune_safety.config.names import SMOL_NAMES, TOY_NAMES
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.presets import PRESETS
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.models.endpoint import EndpointError, is_endpoint, parse, redact
from finetune_safety.models.gguf import check_gguf
from finetune_safety.models.local import local_model, model_and_adapter
from finetune_safety.models.target import ModelSpec
from finetune_safety.models.templates import TEMPLATE_NAMES, get_template

#: Reserved: the base model's alias, never a checkpoint's.
BASE_ALIAS = "base"
#: The scheme of a judge run by a local model: ``hf:PATH``.
HF_JUDGE = "hf:"
#: A model spec's keys (a table in ``base`` or ``checkpoints``; ``evaluate``'s model flags), and
#: what each says.
SPEC_FIELDS: Mapping[str, str] = {
    "model": "toy name, local directory, GGUF file, hub id or openai:MODEL[@URL]",
    "adapter": "PEFT adapter directory (its base is used if no model is given)",
    "template": ", ".join(TEMPLATE_NAMES) + " (aoa: by the model's family)",
    "system_prompt": "system prompt replacing the template's",
    "allow_pickle": "load non-safetensors weights",
    "trust_remote_code": "run the model repository's code",
    "revision": "served (openai:) models: your name for what the server runs",
}
SWITCH_FIELDS = ("allow_pickle", "trust_remote_code")
_RECIPE_KEYS = {
    "base", "data", "preset", "template", "epochs", "lr", "batch_size", "mix_safety", "full",
}  # fmt: skip


def model_spec(value: object, where: str, rootdir: Path) -> ModelSpec:
    """A spec from a string (toy name, directory, adapter directory, hub id) or a table.

    A directory holding both a full model and an adapter is refused as a string, which does
    not say which is meant; a table says it: ``model = DIR`` is the full model, ``adapter = DIR``
    the adapter.
    """
    table_form = not isinstance(value, str)
    if isinstance(value, str):
        check(bool(value.strip()), where, "empty model spec")
        value = {"model": value}
    check(isinstance(value, dict), where, f"expected a string or a table, got {value!r}")
    assert isinstance(value, dict)
    unknown = set(value) - set(SPEC_FIELDS)
    check(not unknown, where, f"unknown key(s) {sorted(unknown)}; known: {sorted(SPEC_FIELDS)}")
    for key in (k for k in SPEC_FIELDS if k not in SWITCH_FIELDS):
        check(value.get(key) is None or isinstance(value[key], str), f"{where}.{key}", "not text")
    for key in SWITCH_FIELDS:
        check(isinstance(value.get(key, False), bool), f"{where}.{key}", "expected true/false")
    model, adapter = value.get("model"), value.get("adapter")
    full_model = False
    check(model is not None or adapter is not None, where, "needs a model or an adapter")
    check(
        value.get("revision") is None or is_endpoint(model),
        f"{where}.revision",
        "a revision applies to served (openai:) models only",
    )
    _check_template(value.get("template"), f"{where}.template")
    if is_endpoint(model):
        check(adapter is None, where, "a served (openai:) model takes no adapter")
        try:
            parse(str(model))
        except EndpointError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    elif model is not None and model not in (*TOY_NAMES, *SMOL_NAMES) and not _plugged(model):
        try:
            local = _gguf_file(model, rootdir) or local_model(model, rootdir, full_model=table_form)
        except FinetuneSafetyError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if local is not None:
            model = str(local)
            full_model = model_and_adapter(local) is not None
            if (local / "adapter_config.json").is_file() and adapter is None and not full_model:
                model, adapter = None, str(local)
    if adapter is not None:
        adapter = path_in(adapter, rootdir)
        check(Path(adapter).is_dir(), f"{where}.adapter", f"no adapter directory at {adapter}")
    return ModelSpec(
        model=model,
        adapter=adapter,
        template=value.get("template"),
        system_prompt=value.get("system_prompt"),
        allow_pickle=value.get("allow_pickle", False),
        trust_remote_code=value.get("trust_remote_code", False),
        revision=value.get("revision"),
        full_model=full_model,
    )


def checkpoints(value: object, where: str, rootdir: Path) -> dict[str, ModelSpec | Recipe]:
    """The table's ``alias = spec`` (or recipe) entries, in order."""
    check(isinstance(value, dict), where, "expected a table")
    assert isinstance(value, dict)
    check(BASE_ALIAS not in value, where, f"the alias {BASE_ALIAS!r} is reserved")
    check(
        bool(value),
        where,
        "empty: name at least one checkpoint (alias = spec), or remove the table for the toys",
    )
    return {
        alias: recipe(spec, f"{where}.{alias}", rootdir)
        if isinstance(spec, dict) and "data" in spec
        else model_spec(spec, f"{where}.{alias}", rootdir)
        for alias, spec in value.items()
    }


def checkpoint_items(value: object, where: str, rootdir: Path) -> dict[str, ModelSpec]:
    """``ALIAS=SPEC`` items from the command line (the spec may hold ``=``), in order."""
    found: dict[str, ModelSpec] = {}
    for item in value:  # type: ignore[attr-defined]
        alias, sep, spec = str(item).partition("=")
        check(bool(sep and alias and spec), where, f"expected ALIAS=SPEC, got {item!r}")
        check(alias not in found, where, f"alias {alias!r} given twice")
        check(alias != BASE_ALIAS, where, f"the alias {BASE_ALIAS!r} is reserved")
        found[alias] = model_spec(spec, f"{where} {alias}", rootdir)
    return found


def recipe(value: dict[str, Any], where: str, rootdir: Path) -> Recipe:
    """A checkpoint table with ``data``: made by ``finetune`` on first use (see Recipe)."""
    unknown = set(value) - _RECIPE_KEYS
    check(
        not unknown,
        where,
        f"unknown recipe key(s) {sorted(unknown)}; known: {sorted(_RECIPE_KEYS)}",
    )
    check(isinstance(value.get("base"), str), f"{where}.base", "a recipe needs a base model spec")
    base = model_spec(value["base"], f"{where}.base", rootdir)
    check(base.model is not None and base.adapter is None, f"{where}.base", "must be a model")
    data = Path(path_in(str(value["data"]), rootdir))
    check(data.is_file(), f"{where}.data", f"no data file at {data}")
    preset = value.get("preset")
    check(preset is None or preset in PRESETS, f"{where}.preset", f"one of {sorted(PRESETS)}")
    _check_template(value.get("template"), f"{where}.template")
    if preset is None:
        for key in ("epochs", "lr", "batch_size", "template"):
            check(key in value, where, f"without a preset, give {key}")
    for key in ("epochs", "batch_size", "mix_safety"):
        if key in value and not (key == "mix_safety" and value[key] == 0):
            positive_int(value[key], f"{where}.{key}")
    if "lr" in value:
        lr = value["lr"]
        ok = isinstance(lr, float) and 0 < lr < 1
        check(ok, f"{where}.lr", f"expected a learning rate like 5e-5, got {lr!r}")
    check(isinstance(value.get("full", False), bool), f"{where}.full", "expected true/false")
    return Recipe(
        base=str(base.model),
        data=data,
        preset=preset,
        template=value.get("template"),
        epochs=value.get("epochs"),
        lr=value.get("lr"),
        batch_size=value.get("batch_size"),
        mix_safety=value.get("mix_safety", 0),
        full=value.get("full", False),
    )


def judge_spec(value: object, where: str, rootdir: Path) -> str:
    """A judge spec whose model is checked as a model spec's is: an ``hf:`` judge's path (made
    absolute against ``rootdir``) or hub id, an ``openai:`` judge's URL. A judge that names
    nothing stops the run here, naming its key or option, before anything is generated."""
    spec = text(value, where, rootdir).strip()
    if spec.startswith(HF_JUDGE):
        checked = model_spec(spec.removeprefix(HF_JUDGE), f"{where} {spec}", rootdir)
        return HF_JUDGE + str(checked.model or checked.adapter)
    if is_endpoint(spec):
        try:
            parse(spec)
        except EndpointError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return spec


def judge_specs(value: object, where: str, rootdir: Path) -> str | tuple[str, ...]:
    """One judge spec, or a list of several (the table's list, a repeated option), each
    checked as ``judge_spec``; a list of one is that one spec."""
    if not isinstance(value, list | tuple):
        return judge_spec(value, where, rootdir)
    check(bool(value), where, "expected a judge spec or a non-empty list of them")
    each = [where if where.startswith("-") else f"{where}[{i}]" for i in range(len(value))]
    found = tuple(judge_spec(spec, at, rootdir) for spec, at in zip(value, each, strict=True))
    for spec in found:
        check(found.count(spec) == 1, where, f"judge {redact(spec)} is listed twice")
    return found[0] if len(found) == 1 else found


def _gguf_file(model: str, rootdir: Path) -> Path | None:
    """A ``.gguf`` file is a model too (transformers dequantizes it on load), if it is one."""
    path = Path(path_in(model, rootdir))
    return check_gguf(path) if path.is_file() and path.suffix.lower() == ".gguf" else None


def _plugged(model: str) -> bool:
    """``scheme:...`` (no hub id has a colon): a registered target or a conftest hook builds it,
    and says so if none claims it."""
    scheme, colon, _ = model.partition(":")
    return bool(colon) and scheme.isidentifier() and len(scheme) > 1


def _check_template(name: object, where: str) -> None:
    if name is not None:
        try:
            get_template(str(name))
        except FinetuneSafetyError as exc:
            raise ConfigError(f"{where}: {exc}") from None
