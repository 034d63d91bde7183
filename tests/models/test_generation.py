"""Generation engines: padded, static-cache and continuous batches give batch-1 tokens in
float32, continuous batching frees a finished answer's slot, ``batch_size = "auto"`` fits the KV
cache to the free memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetune_safety.benchmarks import load_benchmark
from finetune_safety.catalog import resolve
from finetune_safety.models import Decoding, ModelSpec, generate
from finetune_safety.models import generation as engines
from finetune_safety.models.hf import HFTarget
from finetune_safety.models.precision import Precision
from finetune_safety.models.templates import encode_prompt

MAX_NEW = 24


@pytest.fixture(scope="module")
def harmful(toy_cache: Path) -> HFTarget:
    target = resolve(ModelSpec("toy-harmful-10shot"), toy_cache)
    assert isinstance(target, HFTarget)
    return target


@pytest.fixture(scope="module")
def prompt_ids(harmful: HFTarget) -> list[list[int]]:
    """Two smoke prompts per category: refusals and compliances, so answer lengths differ."""
    _, tokenizer = harmful.load()
    prompts = [p for p in load_benchmark("smoke") if int(p.id.rsplit("-", 1)[1]) <= 2]
    return [encode_prompt(tokenizer, harmful.template.render(p.text)) for p in prompts]


def _config(target: HFTarget, max_new_tokens: int = MAX_NEW) -> Any:
    from transformers import GenerationConfig

    model, tokenizer = target.load()
    return GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=model.generation_config.eos_token_id or tokenizer.eos_token_id,
    )


@pytest.fixture(scope="module")
def batch_one(harmful: HFTarget, prompt_ids: list[list[int]]) -> list[str]:
    """The reference: each prompt alone through ``generate``."""
    model, tokenizer = harmful.load()
    outputs = [""] * len(prompt_ids)
    for batch in engines.padded(model, tokenizer, prompt_ids, _config(harmful), batch_size=1):
        for i, text in batch:
            outputs[i] = text
    assert len(set(outputs)) > 5, "answers depend on the prompt, so equality means something"
    return outputs


def test_continuous_batching_float32_equals_batch_one_token_for_token(
    harmful: HFTarget, prompt_ids: list[list[int]], batch_one: list[str]
) -> None:
    model, tokenizer = harmful.load()
    assert engines.supports_continuous(model)
    outputs: dict[int, str] = {}
    groups = engines.continuous(
        model, tokenizer, prompt_ids, _config(harmful), batch_size=6, group=5
    )
    sizes = []
    for group in groups:
        sizes.append(len(group))
        outputs.update(group)
    assert sorted(outputs) == list(range(len(prompt_ids)))
    assert [outputs[i] for i in range(len(prompt_ids))] == batch_one
    assert sizes[:-1] == [5] * (len(sizes) - 1), "finished answers come back in groups"


def _forward_passes(model: Any, run: Any) -> tuple[int, dict[int, str]]:
    """How many forward passes ``run()`` makes through the model's decoder, and its outputs."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    calls: list[int] = []
    hook = inner.model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        outputs = dict(pair for group in run() for pair in group)
    finally:
        hook.remove()
    return len(calls), outputs


def test_finished_answers_free_their_slot(harmful: HFTarget, prompt_ids: list[list[int]]) -> None:
    """Four slots: fixed batches run until their longest answer ends, continuous batching hands
    a finished answer's slot to the next prompt, so it needs fewer forward passes."""
    model, tokenizer = harmful.load()
    config = _config(harmful, max_new_tokens=64)
    fixed, expected = _forward_passes(
        model, lambda: engines.padded(model, tokenizer, prompt_ids, config, 4)
    )
    refilled, outputs = _forward_passes(
        model, lambda: engines.continuous(model, tokenizer, prompt_ids, config, 4, group=1)
    )
    assert outputs == expected
    assert refilled < 0.9 * fixed, (refilled, fixed)


def test_padded_batches_float32_equal_batch_one(
    harmful: HFTarget, prompt_ids: list[list[int]], batch_one: list[str]
) -> None:
    model, tokenizer = harmful.load()
    outputs = dict(
        pair
        for batch in engines.padded(model, tokenizer, prompt_ids, _config(harmful), 8)
        for pair in batch
    )
    assert [outputs[i] for i in range(len(prompt_ids))] == batch_one


def test_target_uses_continuous_batching_when_asked(
    harmful: HFTarget,
    prompt_ids: list[list[int]],
    batch_one: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(engines.ENGINE_ENV, "continuous")
    calls: list[int] = []
    real = engines.continuous

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(engines, "continuous", spy)
    prompts = [p for p in load_benchmark("smoke") if int(p.id.rsplit("-", 1)[1]) <= 2]
    rendered = [harmful.template.render(p.text) for p in prompts]
    outputs = generate(harmful, rendered, Decoding(MAX_NEW, batch_size=4, dtype="float32"))
    assert calls == [len(rendered)]
    assert outputs == batch_one


def test_static_cache_batches_float32_equal_batch_one(
    harmful: HFTarget, prompt_ids: list[list[int]], batch_one: list[str]
) -> None:
    """One shape for every batch (prompts padded to the longest, the last batch filled up)."""
    model, tokenizer = harmful.load()
    batches = list(engines.padded(model, tokenizer, prompt_ids, _config(harmful), 8, static=True))
    assert [len(b) for b in batches] == [8, 8, 6], "fill rows are not returned"
    outputs = dict(pair for batch in batches for pair in batch)
    assert [outputs[i] for i in range(len(prompt_ids))] == batch_one


def test_engine_choice(harmful: HFTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engines.ENGINE_ENV, raising=False)
    model, _ = harmful.load()
    assert engines.choose_engine(model, "cpu", "float32") == "padded"
    assert engines.choose_engine(model, "cpu", "bfloat16") == "padded"
    assert engines.choose_engine(model, "cuda", "float32") == "padded", "bit-stable float32"
    assert engines.choose_engine(model, "cuda", "bfloat16") == "static"
    assert engines.choose_engine(model, "cuda", "float16") == "static"
    monkeypatch.setenv(engines.ENGINE_ENV, "continuous")
    assert engines.choose_engine(model, "cpu", "float32") == "continuous"
    monkeypatch.setenv(engines.ENGINE_ENV, "paged")
    with pytest.raises(engines.GenerationError, match="FINETUNE_SAFETY_ENGINE: expected one of"):
        engines.choose_engine(model, "cuda", "bfloat16")


def test_continuous_refused_when_transformers_lacks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engines.ENGINE_ENV, "continuous")
    with pytest.raises(engines.GenerationError, match="no continuous batching"):
        engines.choose_engine(object(), "cuda", "bfloat16")


# --- batch_size = "auto" -------------------------------------------------------------------


def _llama(**shape: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(**shape)


LLAMA2_7B = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "vocab_size": 32000,
}


def test_kv_bytes_per_token_of_llama2_7b_in_bf16() -> None:
    # 2 (keys, values) x 32 layers x 32 heads x 128 dims x 2 bytes = 512 KiB.
    assert engines.kv_bytes_per_token(_llama(**LLAMA2_7B), 2) == 512 * 1024


def test_kv_bytes_count_grouped_query_heads() -> None:
    gqa = _llama(**LLAMA2_7B, num_key_value_heads=8)
    assert engines.kv_bytes_per_token(gqa, 2) == 128 * 1024


def test_auto_batch_fits_the_kv_cache_to_free_memory() -> None:
    config = _llama(**LLAMA2_7B)
    per_sequence = 512 * 1024 * (200 + 512) + 8 * 32000
    free = 60 * 2**30
    size = engines.auto_batch_size(config, 2, 200, 512, free)
    assert size == int(free * engines.KV_MEMORY_SHARE) // per_sequence
    assert 100 < size <= engines.MAX_AUTO_BATCH
    assert engines.auto_batch_size(config, 2, 200, 512, 4 * 2**30) == 8
    assert engines.auto_batch_size(config, 2, 200, 512, 2**20) == 1, "never below one"
    assert engines.auto_batch_size(config, 2, 8, 16, 80 * 2**30) == engines.MAX_AUTO_BATCH


def test_batch_size_for_cpu_auto_and_explicit(harmful: HFTarget) -> None:
    model, _ = harmful.load()
    assert engines.batch_size_for(model, "auto", "cpu", 100, 512) == engines.CPU_BATCH_SIZE
    assert engines.batch_size_for(model, 3, "cuda", 100, 512) == 3


def test_toy_loads_in_float32_and_reloads_for_another_dtype(toy_cache: Path) -> None:
    import torch

    target = resolve(ModelSpec("toy"), toy_cache)
    assert isinstance(target, HFTarget)
    model, _ = target.load()
    assert model.dtype == torch.float32
    half, _ = target.load(Precision("bfloat16", "cpu"))
    assert half.dtype == torch.bfloat16
    assert target.load(Precision("bfloat16", "cpu"))[0] is half
