"""The case record: what a suite test attaches to its report, and every report reads.

A test carries its record as JSON in an attribute of its test report (which xdist ships to the
controller, and JUnit XML leaves out); the controller reads it back with ``CaseRecord.from_json``.
The record holds verdicts and response hashes, never response text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from finetune_safety.config import Thresholds
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.evaluation.case import CaseResult, Deltas, Record, response_sha256
from finetune_safety.evaluation.metrics import OVERALL
from finetune_safety.values import CategoryResult

#: The test report attribute that carries a case's record.
PROPERTY = "finetune_safety"
#: Bumped when a field changes meaning; a reader refuses a version it does not know.
VERSION = 1


class RecordError(FinetuneSafetyError):
    """A case record of a version this finetune-safety cannot read."""


@dataclass(frozen=True)
class PromptVerdict:
    """One prompt's verdict in a record: ``[score, label, response sha256]`` in JSON, and a
    fourth item when there is more to say: ``{p_unsafe, categories, refusal}`` when a
    classifier judge gave readings, ``judges: [[score, label], ...]`` (each judge's verdict, in
    the configured order) when several judges were combined."""

    score: int | None
    label: str
    response_sha256: str
    details: Mapping[str, Any] = field(default_factory=dict)
    judges: tuple[tuple[int | None, str], ...] = ()

    @classmethod
    def of(cls, record: Record) -> PromptVerdict:
        verdict = record.verdict
        sha = response_sha256(record.response)
        judges = tuple((v.score, str(v.label)) for v in verdict.parts)
        return cls(verdict.score, str(verdict.label), sha, verdict.details(), judges)

    def to_json(self) -> list[Any]:
        row = [self.score, self.label, self.response_sha256]
        extra = dict(self.details)
        if self.judges:
            extra["judges"] = [list(judge) for judge in self.judges]
        return [*row, extra] if extra else row

    @classmethod
    def from_json(cls, row: Sequence[Any]) -> PromptVerdict:
        """Raises IndexError or TypeError on a row that is not ``[score, label, sha]`` (and
        optionally the fourth item)."""
        details = row[3] if len(row) > 3 else {}
        if not isinstance(details, Mapping):
            raise TypeError(f"a verdict's fourth item is an object, not {details!r:.40}")
        extra = dict(details)
        judges = tuple((score, str(label)) for score, label in extra.pop("judges", []))
        return cls(row[0], str(row[1]), str(row[2]), extra, judges)


#: prompt id -> verdict, in prompt-id order as read back.
Verdicts = Mapping[str, PromptVerdict]


def _verdicts(records: Iterable[Record]) -> dict[str, PromptVerdict]:
    return {r.prompt.id: PromptVerdict.of(r) for r in records}


@dataclass(frozen=True)
class CaseRecord(Deltas):
    """One checkpoint on one category beside the base, as the reports see it. ``gate`` marks a
    threshold test; the pooled ``overall`` case carries no per-prompt verdicts."""

    alias: str
    category: str
    gate: bool
    base: CategoryResult
    result: CategoryResult
    p_value: float
    p_holm: float | None
    family: int
    newly_unsafe: tuple[str, ...]
    newly_safe: tuple[str, ...]
    max_rate: float | None
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    base_verdicts: Verdicts = field(default_factory=dict)
    verdicts: Verdicts = field(default_factory=dict)
    version: int = VERSION
    #: The prefill depth of a ``test_prefill_depth`` case (a point of the curve), else None.
    depth: int | None = None

    @classmethod
    def from_case(
        cls,
        case: CaseResult,
        gate: bool,
        limits: Thresholds | None = None,
        fingerprints: Mapping[str, str] | None = None,
        depth: int | None = None,
    ) -> CaseRecord:
        overall = case.category == OVERALL
        return cls(
            alias=case.alias,
            category=case.category,
            gate=gate,
            base=case.base,
            result=case.result,
            p_value=case.p_value,
            p_holm=case.p_holm,
            family=case.family,
            newly_unsafe=case.newly_unsafe,
            newly_safe=case.newly_safe,
            max_rate=(limits or Thresholds()).max_rate,
            fingerprints=dict(fingerprints or {}),
            base_verdicts={} if overall else _verdicts(case.base_records),
            verdicts={} if overall else _verdicts(case.records),
            depth=depth,
        )

    def verdicts_json(self) -> dict[str, Any]:
        """``{"base": {id: row}, "checkpoint": {id: row}}``; ``{}`` for the pooled case."""
        if self.category == OVERALL:
            return {}
        return {
            "base": {pid: v.to_json() for pid, v in self.base_verdicts.items()},
            "checkpoint": {pid: v.to_json() for pid, v in self.verdicts.items()},
        }

    def to_json(self) -> str:
        data = {
            "version": self.version,
            "alias": self.alias,
            "category": self.category,
            "gate": self.gate,
            "base": asdict(self.base),
            "result": asdict(self.result),
            "p_value": self.p_value,
            "p_holm": self.p_holm,
            "family": self.family,
            "newly_unsafe": list(self.newly_unsafe),
            "newly_safe": list(self.newly_safe),
            "max_rate": self.max_rate,
            "fingerprints": dict(self.fingerprints),
            "verdicts": self.verdicts_json(),
        }
        if self.depth is not None:
            data["depth"] = self.depth
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CaseRecord:
        data = json.loads(text)
        if data.get("version") != VERSION:
            raise RecordError(
                f"case record version {data.get('version')!r}: this finetune-safety reads "
                f"version {VERSION} (are the xdist workers another install?)"
            )
        verdicts = data["verdicts"]
        return cls(
            alias=data["alias"],
            category=data["category"],
            gate=data["gate"],
            base=CategoryResult(**data["base"]),
            result=CategoryResult(**data["result"]),
            p_value=data["p_value"],
            p_holm=data["p_holm"],
            family=data["family"],
            newly_unsafe=tuple(data["newly_unsafe"]),
            newly_safe=tuple(data["newly_safe"]),
            max_rate=data["max_rate"],
            fingerprints=data["fingerprints"],
            base_verdicts=verdict_rows(verdicts.get("base", {})),
            verdicts=verdict_rows(verdicts.get("checkpoint", {})),
            depth=data.get("depth"),
        )


def verdict_rows(rows: Mapping[str, Sequence[Any]]) -> dict[str, PromptVerdict]:
    """Per-prompt rows as a record or a JSON run report writes them (``verdicts.checkpoint``)."""
    return {pid: PromptVerdict.from_json(row) for pid, row in rows.items()}
