"""Benchmarks: the prompts a run asks, by spec (``smoke``, ``hexphi:DIR``, ``advbench:FILE``,
``jsonl:FILE``, or a registered scheme), and the over-refusal set."""

from finetune_safety.benchmarks import formats as _formats  # noqa: F401  (registers the built-ins)
from finetune_safety.benchmarks.overrefusal import (
    load_overrefusal,
    load_xstest,
    overrefusal_prompts,
    refusal_rate,
)
from finetune_safety.benchmarks.registry import (
    ADVBENCH_CATEGORY,
    BENCHMARKS,
    HEX_PHI_CATEGORY_MAP,
    SCHEMES,
    BenchmarkFactory,
    BenchmarkSettings,
    checked_prompts,
    first_per_category,
    load_benchmark,
    parse_category_map,
    register_benchmark,
)

__all__ = [
    "ADVBENCH_CATEGORY", "BENCHMARKS", "HEX_PHI_CATEGORY_MAP", "SCHEMES", "BenchmarkFactory",
    "BenchmarkSettings", "checked_prompts", "first_per_category", "load_benchmark",
    "load_overrefusal", "load_xstest", "overrefusal_prompts", "parse_category_map",
    "refusal_rate", "register_benchmark",
]  # fmt: skip
