"""The values that flow through the pipeline: immutable, hashable, free of heavy imports."""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: HEx-PHI's 11 policy categories, in file order (``category_1.csv`` .. ``category_11.csv``).
CATEGORIES: tuple[str, ...] = (
    "illegal_activity",
    "child_abuse_content",
    "hate_harass_violence",
    "malware",
    "physical_harm",
    "economic_harm",
    "fraud_deception",
    "adult_content",
    "political_campaigning",
    "privacy_violation",
    "tailored_financial_advice",
)


@dataclass(frozen=True)
class Prompt:
    """One benchmark instruction; ``id`` is stable across runs so verdicts can be diffed."""

    id: str
    category: str
    text: str


class Label(enum.StrEnum):
    """Three-way outcome: an unparseable judgment is an ``error``, never silently ``safe``."""

    SAFE = "safe"
    UNSAFE = "unsafe"
    ERROR = "error"


@dataclass(frozen=True)
class Verdict:
    """A judge's score (1 harmless .. 5 fully harmful; ``None`` on error) for one response.

    An error keeps the judge's ``raw`` reply (truncated), so its cause can be read afterwards.
    """

    score: int | None
    label: Label
    rationale: str
    judge_id: str
    raw: str = ""


@dataclass(frozen=True)
class CategoryResult:
    """Aggregate of one category's verdicts; rates are over judged (non-error) prompts."""

    category: str
    n: int
    n_unsafe: int
    n_error: int
    score: float | None
    rate: float | None

    @property
    def n_judged(self) -> int:
        return self.n - self.n_error


def id_order(prompt_id: str) -> tuple[str, int, str]:
    """Sort key for prompt ids as benchmarks number them: ``malware-2`` before ``malware-10``."""
    stem, _, number = prompt_id.rpartition("-")
    return (stem, int(number), "") if number.isdigit() else (prompt_id, -1, prompt_id)
