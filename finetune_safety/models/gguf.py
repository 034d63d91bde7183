"""GGUF models (llama.cpp's format): found by path, fingerprinted by the file, family by template.

transformers loads a GGUF file dequantized (``gguf_file=``; needs the ``gguf`` package, the
``gguf`` extra), tokenizer and chat template included. Many models people fine-tune and serve
ship as GGUF, and so does the one real instruct model this project tests on in CI.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from finetune_safety.errors import ModelLoadError
from finetune_safety.models.templates import family

SUFFIX = ".gguf"
#: The first bytes of every GGUF file.
MAGIC = b"GGUF"


def find_gguf(path: Path) -> Path | None:
    """The GGUF file a spec names: the file itself, or the one ``.gguf`` in a directory that
    holds no transformers weights; None for anything else."""
    if path.is_file():
        return path if path.suffix.lower() == SUFFIX else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == SUFFIX and p.is_file())
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        raise ModelLoadError(f"holds several GGUF files ({names}); name one of them", path)
    return files[0] if files else None


def check_gguf(path: Path) -> Path:
    """``path``, if it starts with GGUF's magic bytes: a file named ``.gguf`` that is not one is
    found when its spec is read, not by the loader once generation has started."""
    try:
        with path.open("rb") as file:
            head = file.read(len(MAGIC))
    except OSError as exc:
        raise ModelLoadError(f"cannot read the GGUF file: {exc.strerror}", path) from None
    if head != MAGIC:
        raise ModelLoadError(
            f"not a GGUF file (it starts with {head!r}, not {MAGIC!r}): a download or copy that "
            "did not finish, or another format named .gguf",
            path,
        )
    return path


def file_fingerprint(path: Path) -> str:
    """Digest of the file's name, size and mtime: any rewrite of the weights changes it."""
    stat = path.stat()
    text = f"gguf:{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def gguf_chat_template(path: Path) -> str | None:
    """The chat template stored in a GGUF file's metadata, or None."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelLoadError(
            "reading GGUF needs the gguf package: pip install 'finetune-safety[gguf]'", path
        ) from None
    try:
        field = GGUFReader(path).fields.get("tokenizer.chat_template")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"not a readable GGUF file: {exc}", path) from None
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def directory_chat_template(directory: Path) -> str | None:
    """A transformers checkpoint's chat template, read from its files without loading it."""
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            try:
                value = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
            except (OSError, json.JSONDecodeError, AttributeError):
                continue
            if isinstance(value, str):
                return value
    return None


def model_family(model: Path) -> str:
    """The family (``templates.family``) of a local model: a GGUF file or a checkpoint dir."""
    gguf = find_gguf(model)
    if gguf is not None:
        return family(gguf_chat_template(gguf))
    return family(directory_chat_template(model)) if model.is_dir() else "other"


def gguf_load_name(path: Path) -> str:
    """The ``gguf_file=`` argument for ``path``; says how to install ``gguf`` when it is absent."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(
            "loading GGUF needs the gguf package: pip install 'finetune-safety[gguf]'", path
        )
    return path.name


def hub_family(repo_id: str) -> str:
    """The family of a hub model from its cached tokenizer config (no download), else by name:
    Llama-2 chat models are ``llama2`` (the paper's main model is one)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "tokenizer_config.json")
    except ValueError:  # not a valid hub id: resolving it fails later, with its own message
        cached = None
    if isinstance(cached, str):
        template = directory_chat_template(Path(cached).parent)
        if template is not None:
            return family(template)
    lowered = repo_id.lower()
    return "llama2" if "llama-2" in lowered and "chat" in lowered else "other"
