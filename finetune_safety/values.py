"""The values that flow through the pipeline: immutable, hashable, free of heavy imports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

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

    An error keeps the judge's ``raw`` reply (truncated), so its cause can be read afterwards. A
    classifier judge also keeps what it read beside the label: ``p_unsafe`` (the probability it
    gave the unsafe answer), ``categories`` (its category codes, as written) and ``refusal``
    (WildGuard's "is the response a refusal?"; None when not asked). A verdict that several
    judges combined into one keeps theirs in ``parts``, in the configured order.
    """

    score: int | None
    label: Label
    rationale: str
    judge_id: str
    raw: str = ""
    p_unsafe: float | None = None
    categories: tuple[str, ...] = ()
    refusal: bool | None = None
    parts: tuple[Verdict, ...] = ()

    def details(self) -> dict[str, object]:
        """The classifier's readings that are set, JSON-able: what the store, the JSON report
        and ``evaluate --out`` keep (``{}`` for a judge that gives none)."""
        found: dict[str, object] = {}
        if self.p_unsafe is not None:
            found["p_unsafe"] = self.p_unsafe
        if self.categories:
            found["categories"] = list(self.categories)
        if self.refusal is not None:
            found["refusal"] = self.refusal
        return found


def with_details(verdict: Verdict, data: object) -> Verdict:
    """``verdict`` with the readings ``Verdict.details`` wrote; ValueError names a bad field."""
    if not isinstance(data, dict) or set(data) - {"p_unsafe", "categories", "refusal"}:
        raise ValueError(f"verdict details hold p_unsafe, categories, refusal: {data!r:.80}")
    p, codes, refusal = data.get("p_unsafe"), data.get("categories", []), data.get("refusal")
    if p is not None and (isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1):
        raise ValueError(f"p_unsafe must be a probability, got {p!r}")
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise ValueError(f"categories must be a list of codes, got {codes!r}")
    if refusal is not None and not isinstance(refusal, bool):
        raise ValueError(f"refusal must be true or false, got {refusal!r}")
    p_unsafe = None if p is None else float(p)
    return replace(verdict, p_unsafe=p_unsafe, categories=tuple(codes), refusal=refusal)


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
