"""Which category of each classifier judge covers each HEx-PHI category, and the run's warning
for a gated category that none covers.

A judgement made here from each taxonomy (docs/judges.md shows the table and why):
Llama Guard 3/4's S1-S14 (PurpleLlama ``Llama-Guard3/8B/MODEL_CARD.md``; Llama Guard 2 numbers
the same hazards S1-S11 without defamation and elections), HarmBench's semantic categories
(its behaviour set; the classifier asks whether a generation carries out the behaviour and is
harmful, so a category without behaviours of its kind is outside what it was trained on) and
WildGuard's subcategories (WildGuardTest's). ``full``: the taxonomy covers the category;
``partial``: part of it; ``none``: nothing does, so "safe" there means little.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from finetune_safety._util.registry import scheme_of
from finetune_safety.values import CATEGORIES

Level = Literal["full", "partial", "none"]


@dataclass(frozen=True)
class Cover:
    """How a judge's taxonomy covers one HEx-PHI category, and with what."""

    level: Level
    by: str


def _table(rows: Mapping[str, tuple[Level, str]]) -> dict[str, Cover]:
    assert tuple(rows) == CATEGORIES, "one row per HEx-PHI category, in order"
    return {category: Cover(level, by) for category, (level, by) in rows.items()}


COVERAGE: Mapping[str, Mapping[str, Cover]] = {
    "llama-guard": _table(
        {
            "illegal_activity": ("full", "S2 non-violent crimes, S1 violent crimes"),
            "child_abuse_content": ("full", "S4 child sexual exploitation, S1 violent crimes"),
            "hate_harass_violence": (
                "partial",
                "S10 hate, S1 violent crimes; harassment without hate or a crime is outside",
            ),
            "malware": ("full", "S2 non-violent crimes (cyber crimes), S14 code interpreter abuse"),
            "physical_harm": (
                "full",
                "S1 violent crimes, S9 indiscriminate weapons, S11 suicide & self-harm",
            ),
            "economic_harm": (
                "partial",
                "S2 non-violent crimes (fraud, scams); legal gambling, MLM, lending fall outside",
            ),
            "fraud_deception": ("full", "S2 non-violent crimes (fraud, scams)"),
            "adult_content": ("full", "S12 sexual content, S3 sex-related crimes"),
            "political_campaigning": (
                "none",
                "S13 elections covers false information about voting only",
            ),
            "privacy_violation": ("full", "S7 privacy"),
            "tailored_financial_advice": ("full", "S6 specialized advice (financial)"),
        }
    ),
    "harmbench": _table(
        {
            "illegal_activity": ("full", "illegal"),
            "child_abuse_content": ("partial", "illegal; HarmBench has no such behaviours"),
            "hate_harass_violence": ("full", "harassment_bullying, harmful"),
            "malware": ("full", "cybercrime_intrusion"),
            "physical_harm": ("full", "chemical_biological, harmful"),
            "economic_harm": ("partial", "illegal"),
            "fraud_deception": ("full", "illegal, misinformation_disinformation"),
            "adult_content": ("none", "no sexual-content behaviours"),
            "political_campaigning": (
                "none",
                "misinformation_disinformation covers disinformation only",
            ),
            "privacy_violation": ("partial", "illegal, cybercrime_intrusion"),
            "tailored_financial_advice": ("none", "no advice behaviours"),
        }
    ),
    "wildguard": _table(
        {
            "illegal_activity": ("full", "fraud & assisting illegal activities"),
            "child_abuse_content": ("full", "sexual content, violence & physical harm"),
            "hate_harass_violence": (
                "full",
                "toxic language & hate speech, stereotypes & discrimination, violence",
            ),
            "malware": ("full", "cyberattacks"),
            "physical_harm": ("full", "violence & physical harm, mental health crisis"),
            "economic_harm": (
                "partial",
                "fraud & illegal activities, encouraging unethical or unsafe actions",
            ),
            "fraud_deception": ("full", "fraud & illegal activities, disinformation"),
            "adult_content": ("full", "sexual content"),
            "political_campaigning": ("partial", "disinformation campaigns only"),
            "privacy_violation": ("full", "private information, sensitive information"),
            "tailored_financial_advice": ("none", "no advice subcategory"),
        }
    ),
}


def uncovered(spec: str, categories: Iterable[str]) -> list[str]:
    """The run's categories that the judge's taxonomy has nothing for, in the run's order."""
    table = COVERAGE.get(scheme_of(spec.strip()), {})
    return [c for c in categories if c in table and table[c].level == "none"]


def coverage_note(spec: str, categories: Iterable[str]) -> str | None:
    """One sentence for the run's header when the judge covers a gated category with nothing."""
    missing = uncovered(spec, categories)
    if not missing:
        return None
    scheme = scheme_of(spec.strip())
    return (
        f"judge {scheme} has no category for {', '.join(missing)}: its verdicts there are weak "
        "(docs/judges.md)"
    )


def coverage_notes(specs: Iterable[str], categories: Iterable[str]) -> list[str]:
    """``coverage_note`` for each of the run's judges that has one."""
    ran = list(categories)
    return [note for spec in specs if (note := coverage_note(spec, ran)) is not None]
