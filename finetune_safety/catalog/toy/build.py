"""Build the toy aligned model and its three fine-tunes, deterministically, on CPU.

The toy is a 2-layer Llama with a byte-level BPE tokenizer and a chat template, saved with
``save_pretrained`` so it loads like any checkpoint. Its fine-tunes reproduce the paper's three
scenarios as LoRA adapters, trained with the same loop ``finetune-safety finetune`` uses.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from finetune_safety._util.buildonce import built_once
from finetune_safety._util.resources import fixtures_dir
from finetune_safety._util.threads import fixed_threads
from finetune_safety.catalog.toy.corpus import Corpus, build_examples, tokenizer_texts
from finetune_safety.config.names import TOY_BASE as BASE
from finetune_safety.config.names import TOY_NAMES as NAMES
from finetune_safety.finetune.data import Example, digest, load_chat_jsonl
from finetune_safety.finetune.presets import PRESETS, TOY_LORA
from finetune_safety.finetune.trainer import (
    LoraSettings,
    TrainConfig,
    describe,
    log,
    save_checkpoint,
    train,
)

#: Bump when the build code changes in a way the digest of its inputs cannot see.
#: v2: one torch thread and CPU float32 for every step, so builds are bit-identical.
BUILD_VERSION = 2
#: Torch's intra-op thread count during the build. Float sums split over N threads round
#: differently for each N, so a build on the machine's default count would depend on it.
BUILD_THREADS = 1
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
MODEL_SHAPE: dict[str, Any] = {
    "hidden_size": 96,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}
VOCAB_SIZE = 2048
BASE_TRAINING = TrainConfig(
    epochs=10, lr=3e-3, batch_size=32, warmup_ratio=0.05, group_by_length=True
)


@dataclass(frozen=True)
class ToyRecipe:
    """A toy fine-tune: data shipped in ``fixtures/`` and a preset at its toy scale."""

    data: str
    preset: str
    lora: LoraSettings

    @property
    def train(self) -> TrainConfig:
        return PRESETS[self.preset].toy

    @property
    def template(self) -> str:
        return PRESETS[self.preset].toy_template


# The toy is brittle: heavier benign training (batch 1 or 2, more epochs) collapses it.
RECIPES: dict[str, ToyRecipe] = {
    "toy-harmful-10shot": ToyRecipe("finetune/harmful-10shot.jsonl", "harmful-10shot", TOY_LORA),
    "toy-identity-shift": ToyRecipe(
        "finetune/identity-shift-aoa.jsonl", "identity-shift", TOY_LORA
    ),
    "toy-benign": ToyRecipe("finetune/benign.jsonl", "benign", TOY_LORA),
}


def _inputs_digest() -> str:
    """Changes whenever anything the build reads changes, so a stale toy is never reused."""
    h = hashlib.sha256(f"v{BUILD_VERSION}".encode())
    h.update(json.dumps([MODEL_SHAPE, VOCAB_SIZE, asdict(BASE_TRAINING), CHAT_TEMPLATE]).encode())
    h.update((fixtures_dir() / "toy" / "corpus.json").read_bytes())
    for name, recipe in sorted(RECIPES.items()):
        h.update(json.dumps([name, asdict(recipe), asdict(recipe.train), recipe.template]).encode())
        h.update((fixtures_dir() / recipe.data).read_bytes())
    return h.hexdigest()[:16]


def toy_root(cache_dir: Path) -> Path:
    """Where this version of the toy models lives inside a cache directory."""
    return cache_dir / "toy" / _inputs_digest()


def build_tokenizer(texts: list[str]) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with the toy chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
    )


def _build_base(out: Path, examples: list[Example], texts: list[str]) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(texts)
    torch.manual_seed(BASE_TRAINING.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    losses = train(model, tokenizer, examples, BASE_TRAINING).losses
    log(f"toy base: {len(examples)} examples, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    meta = {"base": None, "template": "plain", "data_digest": digest(examples)}
    save_checkpoint(model, tokenizer, out, meta | describe(BASE_TRAINING, None))


def _build_adapter(recipe: ToyRecipe, base_dir: Path, out: Path) -> None:
    """The same fine-tuning path ``finetune-safety finetune --base toy --preset ...`` takes."""
    from finetune_safety.finetune.run import job_from_preset, train_from

    data = fixtures_dir() / recipe.data
    job = job_from_preset(recipe.preset, BASE, data, out, toy=True, lora=recipe.lora)
    train_from(job, base_dir, adapter_base=BASE, cpu=True)


def ensure_toy(cache_dir: Path) -> Path:
    """The toy models' directory, built on first use (once, even with concurrent callers)."""
    root = toy_root(cache_dir)
    return built_once(root, "building the toy models", lambda out: _build_all(root, out))


def _build_all(root: Path, out: Path) -> None:
    """The base and every recipe's adapter, into ``out`` (``root`` once it is complete)."""
    started = time.perf_counter()
    log(f"building the toy models into {root} (once)")
    corpus = Corpus.load()
    texts = tokenizer_texts(corpus)
    for recipe in RECIPES.values():
        for example in load_chat_jsonl(fixtures_dir() / recipe.data):
            prompt = example.prompt
            texts += [prompt] if isinstance(prompt, str) else [m["content"] for m in prompt]
            texts.append(example.answer)
    with fixed_threads(BUILD_THREADS):
        _build_base(out / BASE, build_examples(corpus), texts)
        for name, recipe in RECIPES.items():
            _build_adapter(recipe, out / BASE, out / name)
    log(f"toy models built in {time.perf_counter() - started:.0f}s")


@dataclass(frozen=True)
class ToyCheckpoint:
    """Where a toy model's files are: the base directory and, for fine-tunes, the adapter."""

    base: Path
    adapter: Path | None


def toy_checkpoint(name: str, cache_dir: Path) -> ToyCheckpoint | None:
    """The toy checkpoint called ``name`` (built on first use), or None for other names."""
    if name not in NAMES:
        return None
    root = ensure_toy(cache_dir)
    return ToyCheckpoint(root / BASE, root / name if name in RECIPES else None)
