"""GPU generation at realistic shapes: per-step time vs the memory-bandwidth bound, prompts/s at
batch 1, 16 (the old default) and the new default, and bf16 batch-1 vs batched verdict agreement.

Builds a random-weight Llama of the chosen shape on the device (no download), with the toy's
tokenizer and the smoke prompts under the llama2 template. Random weights never emit EOS, so every
answer runs to ``--max-new-tokens``: a worst case, and a fair timing. Prints ratios; asserts
nothing. Runs on the CPU with ``--shape tiny`` (float32 there; the bf16 agreement needs CUDA).
Every case runs twice: the first call includes compiling (static cache on CUDA), the second not.

    python benchmarks/gpu_generation.py --shape tiny|1b|7b [--prompts 64] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from finetune_safety.benchmarks import load_benchmark
from finetune_safety.catalog.toy import toy_checkpoint
from finetune_safety.evaluation.store import resolve_cache_dir
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.models import Decoding, generate
from finetune_safety.models import generation as engines
from finetune_safety.models.hf import HFTarget
from finetune_safety.models.templates import TEMPLATES

SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
             "num_attention_heads": 4},
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
           "num_attention_heads": 32, "num_key_value_heads": 4},
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
           "num_attention_heads": 32},
}  # fmt: skip
#: HBM bandwidth of the cards this runs on (bytes/s); the CPU figure is a rough DDR guess.
BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "cpu": 20e9}


def build(shape: str, tokenizer_dir: Path, out: Path, dtype: Any, device: str) -> Path:
    """A random-weight Llama of ``shape`` saved with the toy's tokenizer; built on the device."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPES[shape],
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, result


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--prompts", type=int, default=64, help="smoke prompts to answer")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--cache-dir", help="where the toy (for its tokenizer) is built")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device, dtype_name = ("cuda", "bfloat16") if cuda else ("cpu", "float32")
    card = next((k for k in BANDWIDTH if cuda and k in torch.cuda.get_device_name()), "cpu")
    toy = toy_checkpoint("toy", resolve_cache_dir(args.cache_dir, Path.cwd()))
    assert toy is not None
    work = Path(tempfile.mkdtemp(prefix=f"gpu-gen-{args.shape}-"))
    started = time.perf_counter()
    model_dir = build(args.shape, toy.base, work, getattr(torch, dtype_name), device)
    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}, shape {args.shape}, "
          f"{dtype_name}; built in {time.perf_counter() - started:.1f} s")  # fmt: skip

    target = HFTarget("bench", str(model_dir), None, TEMPLATES["llama2"])
    model, _ = target.load()
    params = sum(p.numel() for p in model.parameters())
    bound = params * model.dtype.itemsize / BANDWIDTH[card]
    prompts = load_benchmark("smoke")[: args.prompts]
    inputs = [target.template.render(p.text) for p in prompts]
    new = args.max_new_tokens

    def run(engine: str | None, size: int | Literal["auto"], items: list[Any]) -> list[str]:
        """Answers under ``engine`` (None: the default choice) at batch ``size``."""
        os.environ.pop(engines.ENGINE_ENV, None)
        if engine is not None:
            os.environ[engines.ENGINE_ENV] = engine
        try:
            return generate(target, items, Decoding(new, size, dtype_name))
        finally:
            os.environ.pop(engines.ENGINE_ENV, None)

    default = engines.choose_engine(model, device, dtype_name)
    print(f"params {params / 1e6:.1f} M; {len(inputs)} prompts x {new} tokens; default engine "
          f"{default}; bandwidth bound {bound * 1e3:.2f} ms a step on {card}")  # fmt: skip
    ones_n = min(16, len(inputs))
    cases: list[tuple[str, str | None, int | Literal["auto"], list[Any]]] = [
        ("old: padded, batch 1", "padded", 1, inputs[:ones_n]),
        ("old: padded, batch 16", "padded", 16, inputs),
        (f"new: {default}, batch 1", None, 1, inputs[:ones_n]),
        (f"new: {default}, batch auto", None, "auto", inputs),
    ]
    if engines.supports_continuous(model):
        cases.append(("opt-in: continuous, auto", "continuous", "auto", inputs))
    rates: dict[str, float] = {}
    outputs: dict[str, list[str]] = {}
    print(f"{'':28} {'first call':>12} {'warm':>12}  (prompts/s; first includes compiling)")
    for label, engine, size, items in cases:
        first, _ = timed(lambda: run(engine, size, items))  # noqa: B023
        warm, outputs[label] = timed(lambda: run(engine, size, items))  # noqa: B023
        rates[label] = len(items) / warm
        print(f"{label:28} {len(items) / first:12.2f} {rates[label]:12.2f}")
        if size == 1:
            step = warm / len(items) / new
            print(f"{'':28} batch-1 step {step * 1e3:.2f} ms = {step / bound:.1f}x the bound")
    gain = rates[f"new: {default}, batch auto"] / rates["old: padded, batch 16"]
    same_engine = " (the same engine here: the ratio is noise)" if default == "padded" else ""
    print(f"new default vs old default (batch 16): {gain:.1f}x (target >= 5x on an H100, 7b)"
          f"{same_engine}")  # fmt: skip

    ones = outputs[f"new: {default}, batch 1"]
    batched = outputs[f"new: {default}, batch auto"][:ones_n]
    judge = RefusalJudge()
    v1 = judge.judge(list(zip(prompts[:ones_n], ones, strict=True)))
    vb = judge.judge(list(zip(prompts[:ones_n], batched, strict=True)))
    same = sum(a == b for a, b in zip(ones, batched, strict=True))
    agree = sum(a.label == b.label for a, b in zip(v1, vb, strict=True))
    print(f"{dtype_name}, batch 1 vs auto: {same}/{ones_n} identical answers, {agree}/{ones_n} "
          f"same keyword verdicts")  # fmt: skip


if __name__ == "__main__":
    main()
