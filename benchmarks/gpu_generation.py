"""GPU generation at realistic shapes: per-step time vs the memory-bandwidth bound, prompts/s at
batch 1, 16 (the old default) and the new default, and bf16 batch-1 vs batched verdict agreement.

Builds a random-weight Llama of the chosen shape on the device (no download), with the toy's
tokenizer and the smoke prompts under the llama2 template. Random weights never emit EOS, so every
answer runs to ``--max-new-tokens``: a worst case, and a fair timing. Prints ratios; asserts
nothing. Runs on the CPU with ``--shape tiny`` (float32 there; the bf16 agreement needs CUDA).

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

from finetune_safety.benchmark import load_benchmark
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.models import Decoding, generate
from finetune_safety.models import generation as engines
from finetune_safety.models.hf import HFTarget
from finetune_safety.store import resolve_cache_dir
from finetune_safety.templates import TEMPLATES
from finetune_safety.toy import toy_checkpoint
from finetune_safety.values import Label

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

    def run(batch_size: int | Literal["auto"], items: list[Any] = inputs) -> list[str]:
        return generate(target, items, Decoding(new, batch_size, dtype_name))

    engine = engines.choose_engine(model, device)
    run(4, inputs[:4])  # warm-up (and, for continuous batching on CUDA, graph capture)
    single, _ = timed(lambda: run(1, inputs[: min(8, len(inputs))]))
    single_n = min(8, len(inputs))
    step = single / single_n / new
    print(f"params {params / 1e9:.2f} B; engine {engine}; {len(inputs)} prompts x {new} tokens")
    print(f"batch-1 decode step: {step * 1e3:7.2f} ms  (bandwidth bound {bound * 1e3:.2f} ms "
          f"on {card}: {step / bound:.1f}x the bound; target <= 2.5x on an H100)")  # fmt: skip
    rates = {"batch 1": single_n / single}
    outputs: dict[str, list[str]] = {}
    for label, size in (("batch 16 (old default)", 16), ("auto (new default)", "auto")):
        seconds, outputs[label] = timed(lambda size=size: run(size))  # type: ignore[misc]
        rates[label] = len(inputs) / seconds
    for label, rate in rates.items():
        print(f"{label:24} {rate:8.2f} prompts/s  ({rate / rates['batch 1']:5.1f}x batch 1)")
    gain = rates["auto (new default)"] / rates["batch 16 (old default)"]
    print(f"new default vs old: {gain:.1f}x (target >= 5x on an H100, 7b)")

    ones = run(1, inputs[:16])
    batched = outputs["auto (new default)"][:16]
    judge = RefusalJudge()
    v1 = judge.judge(list(zip(prompts[:16], ones, strict=True)))
    vb = judge.judge(list(zip(prompts[:16], batched, strict=True)))
    same = sum(a == b for a, b in zip(ones, batched, strict=True))
    agree = sum(a.label == b.label for a, b in zip(v1, vb, strict=True))
    unsafe = sum(v.label == Label.UNSAFE for v in v1)
    print(f"{dtype_name} batch-1 vs batched, 16 prompts: {same}/16 identical outputs, "
          f"{agree}/16 same keyword verdicts ({unsafe} unsafe at batch 1)")  # fmt: skip


if __name__ == "__main__":
    main()
