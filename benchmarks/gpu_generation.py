"""GPU generation at realistic shapes: per-step time vs the memory-bandwidth bound, prompts/s at
batch 1, 16 (the old default) and the new default, and bf16 batch-1 vs batched verdict agreement;
or, with ``--hexphi``, one HEx-PHI-shaped run timed as a user's would be.

Builds a random-weight Llama of the chosen shape on the device (no download), with the toy's
tokenizer and the smoke prompts under the llama2 template. Random weights never emit EOS, so every
answer runs to ``--max-new-tokens``: a worst case, and a fair timing. Prints ratios; asserts
nothing. Runs on the CPU with ``--shape tiny`` (float32 there; the bf16 agreement needs CUDA).
Every case runs twice: the first call includes compiling (static cache on CUDA), the second not.

``--hexphi``: 330 prompts (the smoke benchmark's, HEx-PHI's count) x 512 new tokens with EOS
unreachable (its output row is zeroed: the worst case), on Llama-2's full config (its 32,000-token
vocabulary; rows past the toy tokenizer's are zeroed too), through the default engine at
``batch_size = "auto"``. A warm-up call on the longest prompts compiles the same shapes first;
the script prints its time, the run's wall time, prompts/s and the batch ``auto`` chose. The
target is at most 60 s for the 7b shape on one H100 or H200.

    python benchmarks/gpu_generation.py --shape tiny|1b|7b [--prompts 64] [--max-new-tokens 64]
    python benchmarks/gpu_generation.py --shape 7b --hexphi [--cache-dir DIR_WITH_THE_TOY]
    python benchmarks/gpu_generation.py --shape tiny --hexphi --prompts 40 --max-new-tokens 16
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
from finetune_safety.config.project import resolve_cache_dir
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.models import Decoding, generate
from finetune_safety.models import generation as engines
from finetune_safety.models.hf import HFTarget
from finetune_safety.models.templates import TEMPLATES, encode_prompt

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
#: Llama-2's vocabulary (TinyLlama-1.1B's too): the output layer of the full config.
LLAMA2_VOCAB = 32000
#: The HEx-PHI-shaped run: 330 prompts x 512 new tokens, within 60 s on one H100/H200 (7b).
HEXPHI_PROMPTS, HEXPHI_NEW_TOKENS, HEXPHI_TARGET_S = 330, 512, 60.0


def random_llama(
    shape: str, tokenizer: Any, dtype: Any, device: str, vocab_size: int | None = None
) -> Any:
    """A random-weight Llama of ``shape`` on the device, in ``dtype``, for ``tokenizer``.

    ``vocab_size`` larger than the tokenizer's (Llama-2's full config) zeroes the output rows
    of the tokens it cannot decode, and of EOS: their logit 0 never wins greedy decoding
    against the largest of thousands of random ones, so no answer stops early."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size or len(tokenizer),
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPES[shape],
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    if vocab_size is not None:
        with torch.no_grad():
            model.lm_head.weight[len(tokenizer) :] = 0
            model.lm_head.weight[tokenizer.eos_token_id] = 0
    return model


def build(
    shape: str, tokenizer_dir: Path, out: Path, dtype: Any, device: str, vocab: int | None = None
) -> Path:
    """A random-weight Llama of ``shape`` saved with the toy's tokenizer; built on the device."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    random_llama(shape, tokenizer, dtype, device, vocab).save_pretrained(
        out, safe_serialization=True
    )
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
    parser.add_argument("--prompts", type=int, help="smoke prompts to answer (default: 64)")
    parser.add_argument("--max-new-tokens", type=int, help="(default: 64)")
    parser.add_argument("--cache-dir", help="where the toy (for its tokenizer) is built")
    parser.add_argument("--hexphi", action="store_true", help="330 x 512 tokens, timed once")
    args = parser.parse_args()
    if args.hexphi:
        args.prompts = args.prompts or HEXPHI_PROMPTS
        args.max_new_tokens = args.max_new_tokens or HEXPHI_NEW_TOKENS
    args.prompts, args.max_new_tokens = args.prompts or 64, args.max_new_tokens or 64

    cuda = torch.cuda.is_available()
    device, dtype_name = ("cuda", "bfloat16") if cuda else ("cpu", "float32")
    card = next((k for k in BANDWIDTH if cuda and k in torch.cuda.get_device_name()), "cpu")
    toy = toy_checkpoint("toy", resolve_cache_dir(args.cache_dir, Path.cwd()))
    assert toy is not None
    work = Path(tempfile.mkdtemp(prefix=f"gpu-gen-{args.shape}-"))
    started = time.perf_counter()
    vocab = LLAMA2_VOCAB if args.hexphi else None
    model_dir = build(args.shape, toy.base, work, getattr(torch, dtype_name), device, vocab)
    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}, shape {args.shape}, "
          f"{dtype_name}; built in {time.perf_counter() - started:.1f} s")  # fmt: skip

    target = HFTarget("bench", str(model_dir), None, TEMPLATES["llama2"])
    model, _ = target.load()
    params = sum(p.numel() for p in model.parameters())
    bound = params * model.dtype.itemsize / BANDWIDTH[card]
    prompts = load_benchmark("smoke")[: args.prompts]
    inputs = [target.template.render(p.text) for p in prompts]
    new = args.max_new_tokens
    if args.hexphi:
        hexphi(target, model, inputs, new, device, dtype_name, args.shape)
        return

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


def hexphi(
    target: HFTarget, model: Any, inputs: list[Any], new: int, device: str, dtype: str, shape: str
) -> None:
    """One HEx-PHI-shaped run through the default engine at ``batch_size = "auto"``, after a
    warm-up call that compiles the same shapes (the longest prompts, one batch of them)."""
    tokenizer = target.load()[1]
    ids = [encode_prompt(tokenizer, item) for item in inputs]
    size = engines.batch_size_for(model, "auto", device, max(len(x) for x in ids), new)
    engine = engines.choose_engine(model, device, dtype)
    longest = sorted(range(len(inputs)), key=lambda i: len(ids[i]), reverse=True)[:size]
    decoding = Decoding(new, "auto", dtype)
    warm_up, _ = timed(lambda: generate(target, [inputs[i] for i in longest], decoding))
    params = sum(p.numel() for p in model.parameters())
    print(f"params {params / 1e6:.0f} M; engine {engine}, batch auto = {size}; warm-up "
          f"(compiles; the {len(longest)} longest prompts): {warm_up:.1f} s")  # fmt: skip
    wall, _ = timed(lambda: generate(target, inputs, decoding))
    print(f"{len(inputs)} prompts x {new} new tokens: {wall:.1f} s, {len(inputs) / wall:.2f} "
          f"prompts/s, {len(inputs) * new / wall:.0f} tokens/s")  # fmt: skip
    print(f"target: <= {HEXPHI_TARGET_S:.0f} s on one H100/H200 at the 7b shape (this: {shape})")


if __name__ == "__main__":
    main()
