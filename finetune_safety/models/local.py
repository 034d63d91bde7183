"""What a model spec names, checked before any work: a local directory, or a hub id.

A relative path is taken against the rootdir (pytest) or the working directory (CLI); a spec that
is neither an existing path nor a valid hub id is an error naming it, and offline a hub id that is
not in the local cache is one too, so a typo never becomes a download attempt per test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from finetune_safety.errors import ModelLoadError
from finetune_safety.models.gguf import check_gguf, find_gguf

#: Hugging Face repo ids: ``name`` or ``owner/name``; letters, digits, ``-``, ``_``, ``.``.
_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")
_MODEL_FILES = ("config.json", "adapter_config.json")
#: Files a tokenizer loads from: the fast tokenizer's, its config, or a slow one's vocabulary.
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
    "spiece.model",
)  # fmt: skip
#: A full model's weights beside its config.json (an adapter's are ``adapter_model.*``).
_WEIGHTS = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def is_hub_id(spec: str) -> bool:
    """Whether ``spec`` is spelled like a hub repo id (``gpt2``, ``org/name``)."""
    return bool(_HUB_ID.fullmatch(spec)) and ".." not in spec and "--" not in spec


def model_and_adapter(directory: Path) -> str | None:
    """The full model's weights file, where ``directory`` also holds a PEFT adapter (a LoRA
    directory later written over by a full fine-tune); None where it holds one or neither."""
    if (
        not (directory / "config.json").is_file()
        or not (directory / "adapter_config.json").is_file()
    ):
        return None
    return next((p.name for pattern in _WEIGHTS for p in sorted(directory.glob(pattern))), None)


def check_model_dir(directory: Path, full_model: bool = False) -> Path:
    """A directory a model loads from: it holds ``config.json`` and a tokenizer, or a GGUF file
    (or is a PEFT adapter); a GGUF file itself is one too. Checked on the files alone, before
    any load: a broken checkpoint stops the run with one line, not one traceback per test.

    One that holds both a full model and an adapter is refused unless ``full_model`` says the
    full model is meant: which of the two was tested would otherwise be transformers' guess.
    """
    gguf = find_gguf(directory)
    if gguf is not None:
        check_gguf(gguf)  # a GGUF file is a whole model, tokenizer included
        return directory
    weights = model_and_adapter(directory)
    if weights is not None and not full_model:
        raise ModelLoadError(
            f"holds both a full model (config.json, {weights}) and a PEFT adapter "
            "(adapter_config.json), so which one to test is unclear; say it in a table, "
            f'{{ model = "{directory}" }} for the full model or {{ adapter = "{directory}" }} '
            "for the adapter (evaluate, render: --model or --adapter), or keep one per directory",
            directory,
        )
    if not any((directory / name).is_file() for name in _MODEL_FILES):
        raise ModelLoadError(
            "not a Hugging Face model directory (no config.json); give the directory that "
            "holds config.json and the *.safetensors weights, or an adapter directory "
            "(adapter_config.json)",
            directory,
        )
    adapter = (directory / "adapter_config.json").is_file()
    full = (directory / "config.json").is_file() and (full_model or not adapter)
    if full and not has_tokenizer(directory):
        raise ModelLoadError(
            f"holds no tokenizer (none of {', '.join(_TOKENIZER_FILES)}): a save that stopped "
            "before the tokenizer was written? Save it beside the weights, or train again",
            directory,
        )
    return directory


def has_tokenizer(directory: Path) -> bool:
    """Whether ``directory`` holds a file a tokenizer loads from (an adapter's tokenizer may
    also come from its base model)."""
    return any((directory / name).is_file() for name in _TOKENIZER_FILES) or any(
        directory.glob("*.tiktoken")
    )


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in _MODEL_FILES)


def local_model(spec: str, rootdir: Path, full_model: bool = False) -> Path | None:
    """The model directory ``spec`` names (relative to ``rootdir``), or None for a hub id.

    Raises ModelLoadError, naming the spec, for a path that is not a model directory (or holds
    both a model and an adapter, unless ``full_model``: see ``check_model_dir``), for a spec
    that is neither a path nor a hub id, and, offline, for a hub id not already cached.
    """
    path = Path(spec).expanduser()
    local = path if path.is_absolute() else rootdir / path
    if local.exists():
        if not local.is_dir():
            raise ModelLoadError(f"no model directory at {local} (it is a file)")
        return check_model_dir(local, full_model)
    if spec.startswith((".", "/", "~")):
        raise ModelLoadError(f"no model directory at {local}")
    if not is_hub_id(spec):
        raise ModelLoadError(
            f"model {spec!r}: no directory at {local}, and not a hub id (name or owner/name)"
        )
    if hub_offline() and not _in_hub_cache(spec):
        raise ModelLoadError(
            f"model {spec!r}: no directory at {local}, and hub model {spec!r} is not in the local "
            "cache; offline (HF_HUB_OFFLINE is set), so nothing was downloaded. Give a path, or "
            "download it once online"
        )
    return None
