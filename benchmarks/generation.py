"""Batched vs one-at-a-time generation on the toy model, and a fully cached re-run's wall time.

Prints ratios rather than asserting times: this machine's timings are noisy. Targets (issue 2):
batched >= 4x a batch-1 loop (how the paper's reference code generates) on >= 100 prompts, and a
fully cached ``finetune-safety evaluate`` of the smoke benchmark in <= 3 s wall.

    python benchmarks/generation.py [--cache-dir DIR] [--batch-size 32] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from finetune_safety.benchmarks import load_benchmark
from finetune_safety.catalog import resolve
from finetune_safety.config.project import resolve_cache_dir
from finetune_safety.models import Decoding, ModelSpec, generate
from finetune_safety.models.templates import TEMPLATES


def _timed(call: object) -> float:
    started = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    cache = resolve_cache_dir(args.cache_dir, Path.cwd())

    target = resolve(ModelSpec("toy"), cache)
    prompts = load_benchmark("smoke")
    # The smoke prompts under two templates: every input distinct.
    inputs = [TEMPLATES[name].render(p.text) for name in ("plain", "llama2") for p in prompts]
    target.load()  # type: ignore[attr-defined]
    generate(target, inputs[:4], Decoding(args.max_new_tokens, 4))  # warm-up
    batched_out: list[str] = []
    single_out: list[str] = []
    batched = _timed(
        lambda: batched_out.extend(
            generate(target, inputs, Decoding(args.max_new_tokens, args.batch_size))
        )
    )
    single = _timed(
        lambda: single_out.extend(
            generate(target, [x], Decoding(args.max_new_tokens, 1))[0] for x in inputs
        )
    )
    print(f"prompts: {len(inputs)}, max_new_tokens: {args.max_new_tokens}")
    print(f"batch-1 loop:      {single:7.2f} s  ({len(inputs) / single:6.1f} prompts/s)")
    print(
        f"batched (size {args.batch_size:>2}): {batched:7.2f} s  "
        f"({len(inputs) / batched:6.1f} prompts/s)"
    )
    print(
        f"speed-up: {single / batched:.1f}x (target >= 4x); identical outputs: "
        f"{batched_out == single_out}"
    )

    command = [sys.executable, "-m", "finetune_safety.cli", "evaluate", "--cache-dir", str(cache)]
    subprocess.run(command, check=True, capture_output=True)  # fill the store
    cached = _timed(lambda: subprocess.run(command, check=True, capture_output=True))
    print(f"fully cached smoke re-run: {cached:.2f} s wall (target <= 3 s)")


if __name__ == "__main__":
    main()
