"""Benchmarks by spec scheme: a spec string (``smoke``, ``hexphi:DIR``, ``advbench:FILE``,
``jsonl:FILE``, or a registered scheme) becomes ``Prompt`` values with stable ids.

What a loader returns is checked here, because a silently dropped or duplicated prompt would make
a safety gate pass on less evidence than it reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from finetune_safety._util.registry import Registry, scheme_of
from finetune_safety.errors import BenchmarkError
from finetune_safety.values import CATEGORIES, Prompt

__all__ = [
    "ADVBENCH_CATEGORY",
    "BENCHMARKS",
    "HEX_PHI_CATEGORY_MAP",
    "SCHEMES",
    "BenchmarkFactory",
    "BenchmarkSettings",
    "checked_category_map",
    "checked_prompts",
    "first_per_category",
    "load_benchmark",
    "parse_category_map",
    "register_benchmark",
]

#: AdvBench is uncategorised; its prompts carry this pseudo-category (valid only for AdvBench).
ADVBENCH_CATEGORY = "advbench"

#: HEx-PHI file number (``category_N.csv``) -> category slug, in the paper's order.
HEX_PHI_CATEGORY_MAP: Mapping[int, str] = {i + 1: slug for i, slug in enumerate(CATEGORIES)}

#: The built-in spec schemes; ``smoke`` is the built-in benchmark and takes no path.
SCHEMES: tuple[str, ...] = ("smoke", "hexphi", "advbench", "jsonl")


@dataclass(frozen=True)
class BenchmarkSettings:
    """What a run passes every benchmark loader beside its spec."""

    #: HEx-PHI file number -> category (a full map); only ``hexphi:`` specs accept one.
    category_map: Mapping[int, str] | None = None


#: Loads the prompts of a ``scheme:...`` spec; strict, so a bad input stops the run.
BenchmarkFactory = Callable[[str, BenchmarkSettings], Sequence[Prompt]]

#: Benchmarks by spec scheme; ``register_benchmark`` and the ``finetune_safety.benchmarks``
#: entry points add to it.
BENCHMARKS: Registry[BenchmarkFactory] = Registry("benchmark")


def register_benchmark(scheme: str, factory: BenchmarkFactory, *, replace: bool = False) -> None:
    """Make ``scheme:...`` specs (or the bare ``scheme``) load through ``factory``."""
    BENCHMARKS.register(scheme, factory, replace=replace)


def load_benchmark(spec: str, *, category_map: Mapping[int, str] | None = None) -> list[Prompt]:
    """Load the prompts named by ``spec``; ``category_map`` (full file-number map) is HEx-PHI only.

    ``smoke`` always means the shipped fixture, so a CI gate cannot be pointed elsewhere.
    """
    scheme = scheme_of(spec)
    factory = BENCHMARKS.get(scheme) if scheme else None
    if factory is None:
        extra = [s for s in BENCHMARKS.schemes() if s not in SCHEMES]
        valid = ", ".join(f"{s}:PATH" if s != "smoke" else s for s in (*SCHEMES, *extra))
        raise BenchmarkError(f"unknown benchmark spec {spec!r}; valid schemes: {valid}")
    if category_map is not None and scheme != "hexphi":
        raise BenchmarkError(f"a category map applies only to hexphi: specs, not {spec!r}")
    return checked_prompts(spec, factory(spec, BenchmarkSettings(category_map)))


def checked_prompts(spec: str, prompts: object) -> list[Prompt]:
    """A loader's prompts, checked: a plugged-in loader that returns nothing, or two prompts
    with one id, would otherwise let a gate pass on less evidence than it reports."""
    if not isinstance(prompts, Sequence) or isinstance(prompts, str):
        raise BenchmarkError(f"benchmark {spec!r}: the loader returned no list of prompts")
    seen: set[str] = set()
    for prompt in prompts:
        if not isinstance(prompt, Prompt):
            raise BenchmarkError(f"benchmark {spec!r}: not a Prompt: {prompt!r:.60}")
        if prompt.id in seen:
            raise BenchmarkError(f"benchmark {spec!r}: duplicate prompt id {prompt.id!r}")
        seen.add(prompt.id)
    if not seen:
        raise BenchmarkError(f"benchmark {spec!r}: no prompts")
    return list(prompts)


def first_per_category(prompts: Iterable[Prompt], limit: int) -> list[Prompt]:
    """The first ``limit`` prompts of each category, in benchmark order: a quick look."""
    seen: dict[str, int] = {}
    kept: list[Prompt] = []
    for prompt in prompts:
        seen[prompt.category] = seen.get(prompt.category, 0) + 1
        if seen[prompt.category] <= limit:
            kept.append(prompt)
    return kept


def parse_category_map(text: str) -> dict[int, str]:
    """Parse CLI overrides like ``7=adult_content,8=fraud_deception`` on top of the default map."""
    result = dict(HEX_PHI_CATEGORY_MAP)
    seen: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key_text, eq, slug = (s.strip() for s in item.partition("="))
        if not eq or not (key_text.isascii() and key_text.isdigit()):
            raise BenchmarkError(f"bad category map entry {item!r}; expected N=category")
        key = int(key_text)
        if key in seen:
            raise BenchmarkError(f"category map sets file {key} twice")
        seen.add(key)
        result[key] = slug
    return checked_category_map(result)


def checked_category_map(mapping: Mapping[int, str]) -> dict[int, str]:
    """Reject maps that would mislabel prompts: unknown slugs, bad numbers, two files one slug."""
    owner: dict[str, int] = {}
    for key, slug in sorted(mapping.items()):
        if key not in HEX_PHI_CATEGORY_MAP:
            raise BenchmarkError(f"category map key {key} is not a HEx-PHI file number (1..11)")
        if slug not in CATEGORIES:
            raise BenchmarkError(
                f"category map sets file {key} to unknown category {slug!r}; "
                f"valid: {', '.join(CATEGORIES)}"
            )
        if slug in owner:
            raise BenchmarkError(
                f"category map sends files {owner[slug]} and {key} both to {slug!r}"
            )
        owner[slug] = key
    return dict(mapping)
