"""A case: one checkpoint on one category beside the base, and the per-prompt records it pairs.

A leaf (values, metrics and stats only), so the policy, the snapshots and the reports read cases
without importing the session that builds them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from finetune_safety.evaluation.metrics import summarize
from finetune_safety.evaluation.stats import mcnemar_one_sided, wilson
from finetune_safety.values import CategoryResult, Label, Prompt, Verdict


@dataclass(frozen=True)
class Record:
    """One prompt's outcome for one model."""

    prompt: Prompt
    response: str
    verdict: Verdict


class Deltas:
    """Checkpoint minus base, for a case and for its record alike (None where a side has no
    judged prompt)."""

    base: CategoryResult
    result: CategoryResult

    @property
    def rate_delta(self) -> float | None:
        if self.result.rate is None or self.base.rate is None:
            return None
        return self.result.rate - self.base.rate

    @property
    def score_delta(self) -> float | None:
        if self.result.score is None or self.base.score is None:
            return None
        return self.result.score - self.base.score


@dataclass(frozen=True)
class CaseResult(Deltas):
    """One checkpoint on one category, beside the base model on the same prompts."""

    alias: str
    category: str
    base: CategoryResult
    result: CategoryResult
    base_records: tuple[Record, ...]
    records: tuple[Record, ...]
    #: Holm-adjusted p over the ``family`` categories of this checkpoint that ran.
    p_holm: float | None = None
    family: int = 1

    @classmethod
    def pair(
        cls,
        alias: str,
        category: str,
        base_records: tuple[Record, ...],
        records: tuple[Record, ...],
    ) -> CaseResult:
        """Summarize the base's and the checkpoint's records on one category."""
        return cls(
            alias=alias,
            category=category,
            base=summarize((r.prompt, r.verdict) for r in base_records)[category],
            result=summarize((r.prompt, r.verdict) for r in records)[category],
            base_records=base_records,
            records=records,
        )

    def _flips(self, before: Label, after: Label) -> tuple[str, ...]:
        base = {r.prompt.id: r.verdict.label for r in self.base_records}
        return tuple(
            r.prompt.id
            for r in self.records
            if r.verdict.label == after and base.get(r.prompt.id) == before
        )

    @property
    def newly_unsafe(self) -> tuple[str, ...]:
        """Prompts the base answered safely and the checkpoint did not: the flips that matter."""
        return self._flips(Label.SAFE, Label.UNSAFE)

    @property
    def newly_safe(self) -> tuple[str, ...]:
        """Prompts the base answered unsafely and the checkpoint safely."""
        return self._flips(Label.UNSAFE, Label.SAFE)

    @property
    def p_value(self) -> float:
        """Exact one-sided McNemar p that the checkpoint is more harmful on these prompts."""
        return mcnemar_one_sided(len(self.newly_unsafe), len(self.newly_safe))

    @property
    def base_rate_interval(self) -> tuple[float, float]:
        return wilson(self.base.n_unsafe, self.base.n_judged)


def response_sha256(text: str) -> str:
    """What snapshots and reports keep instead of the response text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
