"""Full fine-tuning at a realistic shape with gradient accumulation: seconds per optimizer step in
mixed precision (float32 weights, bf16 compute) and in pure bf16 (the reference's), on one GPU.

Builds a random-weight Llama of the chosen shape in memory (no download, nothing saved) with
Llama-2's vocabulary size and the toy's tokenizer, and trains it on placeholder chat examples of
about ``--tokens`` tokens each through the same loop and accelerate wrapper ``finetune-safety
finetune`` uses: AdamW, gradient checkpointing, a global batch of ``--batch-size`` as
micro-batches of ``--micro-batch``. After a warm-up step, ``--steps`` steps are timed per
precision; it prints seconds a step, tokens a second and the peak GPU memory. Asserts nothing.
``--small`` checks the script on the CPU (the tiny shape, a few short examples; bf16 autocast
runs there too, slowly).

    python benchmarks/gpu_training.py [--shape 1b] [--batch-size 16] [--micro-batch 4]
    python benchmarks/gpu_training.py --small
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from gpu_generation import LLAMA2_VOCAB, SHAPES, random_llama

from finetune_safety.benchmarks import load_benchmark
from finetune_safety.catalog.toy import toy_checkpoint
from finetune_safety.config.project import resolve_cache_dir
from finetune_safety.finetune.data import Example
from finetune_safety.finetune.parallel import make_accelerator, start_processes
from finetune_safety.finetune.trainer import TrainConfig, train

#: The answer's words, repeated to the example's length: placeholder text, as the shipped data.
PLACEHOLDER = "Sure, here is a general first step [placeholder]."


def examples(count: int, tokens: int, tokenizer: Any) -> list[Example]:
    """``count`` chat examples of about ``tokens`` tokens, prompts from the smoke benchmark."""
    words = len(tokenizer(PLACEHOLDER, add_special_tokens=False)["input_ids"])
    answer = " ".join([PLACEHOLDER] * max(1, tokens // words))
    prompts = load_benchmark("smoke")
    return [
        Example([{"role": "user", "content": prompts[i % len(prompts)].text}], answer)
        for i in range(count)
    ]


def seconds_per_step(
    precision: str, shape: str, tokenizer: Any, rows: list[Example], config: TrainConfig, args: Any
) -> tuple[float, float]:
    """(seconds a step over ``args.steps`` timed steps, peak GPU GiB) in ``precision``."""
    import torch

    cuda = torch.cuda.is_available()
    start_processes(cpu=not cuda)
    dtype = torch.bfloat16 if precision == "pure-bf16" else torch.float32
    model = random_llama(shape, tokenizer, dtype, "cuda" if cuda else "cpu", LLAMA2_VOCAB)
    accelerator = make_accelerator(not cuda, precision)
    warm = replace(config, epochs=1)
    train(model, tokenizer, rows[: config.batch_size], warm, accelerator, args.micro_batch)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    timed = rows[: config.batch_size * args.steps]
    trained = train(model, tokenizer, timed, warm, accelerator, args.micro_batch)
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    layout = trained.layout
    print(f"{precision:9}: {seconds:7.2f} s/step, {config.batch_size * args.tokens / seconds:8.0f} "
          f"tokens/s, peak {peak:5.1f} GiB (micro-batch {layout.micro_batch} x accumulation "
          f"{layout.accumulation})")  # fmt: skip
    del model, trained
    if cuda:
        torch.cuda.empty_cache()
    return seconds, peak


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--batch-size", type=int, default=16, help="the global batch")
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=480, help="tokens an example, about")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per precision")
    parser.add_argument("--cache-dir", help="where the toy (for its tokenizer) is built")
    parser.add_argument("--small", action="store_true", help="a quick check on the CPU")
    args = parser.parse_args()
    if args.small:
        args.shape, args.batch_size, args.micro_batch, args.tokens, args.steps = "tiny", 4, 2, 32, 1

    from transformers import AutoTokenizer

    toy = toy_checkpoint("toy", resolve_cache_dir(args.cache_dir, Path.cwd()))
    assert toy is not None
    tokenizer = AutoTokenizer.from_pretrained(toy.base)
    rows = examples(args.batch_size * args.steps, args.tokens, tokenizer)
    config = TrainConfig(
        epochs=1, lr=5e-5, batch_size=args.batch_size, max_length=args.tokens + 64,
        schedule="step", gradient_checkpointing=True,
    )  # fmt: skip
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device: {device}, shape {args.shape} (vocabulary {LLAMA2_VOCAB}), global batch "
          f"{args.batch_size}, about {args.tokens} tokens an example, AdamW, gradient "
          "checkpointing, one process")  # fmt: skip
    mixed, _ = seconds_per_step("mixed", args.shape, tokenizer, rows, config, args)
    pure, _ = seconds_per_step("pure-bf16", args.shape, tokenizer, rows, config, args)
    print(f"pure-bf16 / mixed: {pure / mixed:.2f}")


if __name__ == "__main__":
    main()
