"""Greedy generation engines for local models, and ``batch_size = "auto"``.

- ``padded``: fixed batches of length-sorted prompts, left-padded, through ``generate`` with a
  dynamic KV cache. The CPU's one path, and float32 on CUDA (bit-identical to batch 1 there).
- ``static``: the same batches through a static KV cache, every batch the same shape (prompts
  padded to the run's longest, the last batch filled with copies), so that transformers compiles
  the decoding step once per model and run on CUDA (CUDA graphs, no per-step launch overhead).
  The default on CUDA in bf16/fp16: on an H100 (issue 12, 7B shape) it took 8-9 ms a step
  against 55-64 ms for the dynamic cache; the first compile costs about 29 s, once per model.
- ``continuous``: transformers' continuous batching (paged KV cache): a finished answer frees
  its slot at once, so one long answer holds no batch hostage. Opt-in on CUDA with
  ``FINETUNE_SAFETY_ENGINE=continuous``: without flash-attn it runs neither CUDA graphs nor
  compiled decoding, and on the CPU it was slower (toy, smoke x2 at 64 tokens: 32 s vs 21 s).

In float32 every engine gives batch-1 tokens (tests/models/test_generation.py). In bf16 the
answers depend on batch composition; the generation key keeps such results apart (``precision``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from finetune_safety.errors import FinetuneSafetyError

Engine = Literal["padded", "static", "continuous"]
ENGINES: tuple[Engine, ...] = ("padded", "static", "continuous")
#: Overrides the engine choice (``padded``, ``static`` or ``continuous``).
ENGINE_ENV = "FINETUNE_SAFETY_ENGINE"
#: ``batch_size = "auto"`` on the CPU: padding makes larger batches slower there.
CPU_BATCH_SIZE = 16
#: ``batch_size = "auto"`` on CUDA never exceeds this many concurrent sequences.
MAX_AUTO_BATCH = 128
#: Share of the free GPU memory the KV cache may take; the rest is activations and logits.
KV_MEMORY_SHARE = 0.7


class GenerationError(FinetuneSafetyError):
    """Generation failed or stopped before every prompt was answered."""


def kv_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """Bytes of keys and values one token takes in every layer of the model's KV cache."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // heads)
    return 2 * int(text.num_hidden_layers) * kv_heads * head_dim * dtype_bytes


def auto_batch_size(
    config: Any, dtype_bytes: int, longest_prompt: int, max_new_tokens: int, free_bytes: int
) -> int:
    """The largest batch whose KV cache for the longest prompt plus ``max_new_tokens`` fits
    ``KV_MEMORY_SHARE`` of the free memory, and its logits too, capped at ``MAX_AUTO_BATCH``."""
    vocab = int(getattr(config.get_text_config(), "vocab_size", 0) or 0)
    per_sequence = kv_bytes_per_token(config, dtype_bytes) * (longest_prompt + max_new_tokens)
    per_sequence += 2 * 4 * vocab  # float32 logits of the step, and their argmax copy
    return max(1, min(MAX_AUTO_BATCH, int(free_bytes * KV_MEMORY_SHARE) // per_sequence))


def batch_size_for(
    model: Any, requested: int | str, device: str, longest_prompt: int, max_new_tokens: int
) -> int:
    """``requested`` if a number; for ``auto``, the free-memory batch on CUDA, else 16."""
    if isinstance(requested, int):
        return requested
    if device != "cuda":
        return CPU_BATCH_SIZE
    import torch

    free, _total = torch.cuda.mem_get_info()
    size = torch.finfo(model.dtype).bits // 8
    return auto_batch_size(model.config, size, longest_prompt, max_new_tokens, free)


def supports_continuous(model: Any) -> bool:
    """Whether the installed transformers gives this model continuous batching."""
    return callable(getattr(model, "continuous_batching_context_manager", None))


def choose_engine(model: Any, device: str, dtype: str) -> Engine:
    """``static`` on CUDA in bf16/fp16, else ``padded``; the environment variable wins."""
    forced = os.environ.get(ENGINE_ENV, "").strip()
    if forced:
        if forced not in ENGINES:
            raise GenerationError(
                f"{ENGINE_ENV}: expected one of {', '.join(ENGINES)}, got {forced!r}"
            )
        if forced == "continuous" and not supports_continuous(model):
            raise GenerationError(
                f"{ENGINE_ENV}=continuous: the installed transformers has no continuous batching"
            )
        return forced
    return "static" if device == "cuda" and dtype != "float32" else "padded"


def padded(
    model: Any,
    tokenizer: Any,
    ids: Sequence[list[int]],
    config: Any,
    batch_size: int,
    static: bool = False,
) -> Iterator[list[tuple[int, str]]]:
    """Fixed batches of length-sorted prompts, left-padded: a batch waits for its longest answer.

    ``static``: a static KV cache and one shape for every batch, so decoding compiles once."""
    import copy

    import torch

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
    device = next(model.parameters()).device
    padding: dict[str, Any] = {}
    if static:
        batch_size = min(batch_size, len(ids))
        config = copy.deepcopy(config)
        config.cache_implementation = "static"
        padding = {"padding": "max_length", "max_length": max(len(x) for x in ids)}
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        rows = [ids[i] for i in batch]
        rows += [rows[-1]] * (batch_size - len(rows) if static else 0)
        encoded = tokenizer.pad({"input_ids": rows}, return_tensors="pt", **padding)
        # A static cache outlives the call (transformers reuses it): no inference tensors for it.
        with torch.no_grad() if static else torch.inference_mode():
            generated = model.generate(**encoded.to(device), generation_config=config)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        yield [
            (i, tokenizer.decode(row, skip_special_tokens=True))
            for i, row in zip(batch, new_tokens, strict=False)
        ]


def _hints(ids: Sequence[list[int]], max_new_tokens: int) -> dict[str, Any]:
    """Workload hints for sizing the paged cache, where the installed version takes them."""
    try:
        from transformers.generation.continuous_batching.utils import WorkloadHints
    except ImportError:
        return {}
    hints = WorkloadHints(
        max_prompt_length=max(len(x) for x in ids),
        max_generated_length=max_new_tokens,
        num_requests=len(ids),
    )
    return {"workload_hints": hints}


def _cpu_cache(
    settings: Any, ids: Sequence[list[int]], config: Any, batch_size: int
) -> dict[str, int]:
    """The paged cache sized from the workload: left to itself, transformers sizes it from the
    free memory, which on the CPU is most of the machine's RAM (14 GB seen for a toy model)."""
    per_request = max(len(x) for x in ids) + config.max_new_tokens
    page = int(getattr(settings, "page_size", None) or 256)
    blocks = batch_size * -(-per_request // page) + 1
    return {"num_blocks": blocks, "max_batch_tokens": min(batch_size * per_request, 8192)}


def continuous(
    model: Any,
    tokenizer: Any,
    ids: Sequence[list[int]],
    config: Any,
    batch_size: int,
    group: int,
    poll_s: float = 1.0,
) -> Iterator[list[tuple[int, str]]]:
    """Continuous batching: up to ``batch_size`` sequences at once, each slot refilled as soon as
    its answer ends; finished answers come back in groups of ``group`` (for the store)."""
    from transformers import ContinuousBatchingConfig

    if not ids:
        return
    settings = ContinuousBatchingConfig(max_requests_per_batch=batch_size)
    if model.device.type == "cpu":
        settings = ContinuousBatchingConfig(
            max_requests_per_batch=batch_size, **_cpu_cache(settings, ids, config, batch_size)
        )
    with model.continuous_batching_context_manager(
        generation_config=config,
        continuous_batching_config=settings,
        block=True,
        timeout=30,
        **_hints(ids, config.max_new_tokens),
    ) as manager:
        request_ids = manager.add_requests(
            inputs=[list(x) for x in ids], max_new_tokens=config.max_new_tokens
        )
        index = {request: i for i, request in enumerate(request_ids)}
        if len(index) != len(ids):
            raise GenerationError(f"continuous batching accepted {len(index)} of {len(ids)}")
        left, ready = len(ids), []
        while left:
            result = manager.get_result(timeout=poll_s)
            if result is None:
                if not manager.is_running():
                    raise GenerationError(f"continuous batching stopped with {left} unanswered")
                continue
            if not result.is_finished() or result.request_id not in index:
                continue
            if result.error is not None:
                raise GenerationError(f"continuous batching failed a prompt: {result.error}")
            text = tokenizer.decode(result.generated_tokens, skip_special_tokens=True)
            ready.append((index.pop(result.request_id), text))
            left -= 1
            if len(ready) >= group or not left:
                yield ready
                ready = []
