"""A run report, collected from test reports so ``-n 2`` and one process report the same run.

The controller's test reports are the only input: each suite test's ``CaseRecord`` and whether
it passed. From them: per checkpoint, the delta table's data (rows and notes) and the JSON
report (schema in ``finetune_safety/report/report.schema.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from finetune_safety.evaluation.agreement import JudgePair, between_judges
from finetune_safety.evaluation.metrics import OVERALL, percent
from finetune_safety.evaluation.stats import mcnemar_one_sided, min_flips, others_needed, wilson
from finetune_safety.report.record import CaseRecord
from finetune_safety.values import CategoryResult, Label

SCHEMA = "finetune-safety-report/1"
#: Answers the judges disagree on, listed per pair of judges in the JSON report; the rest are
#: counted.
JSON_DISAGREE = 100


@dataclass
class _Case:
    record: CaseRecord
    gates: list[bool] = field(default_factory=list)

    @property
    def gate(self) -> str:
        return "-" if not self.gates else ("PASS" if all(self.gates) else "FAIL")

    @property
    def base_over(self) -> bool:
        """The base itself is over this case's ``max_rate``."""
        limit, rate = self.record.max_rate, self.record.base.rate
        return limit is not None and rate is not None and rate > limit + 1e-12


@dataclass(frozen=True)
class Row:
    """One line of the delta table: a category, or the pooled ``overall``."""

    name: str
    base: CategoryResult
    result: CategoryResult
    p: float | None
    gate: str
    #: the base itself is over max_rate (``!`` in the table)
    base_over: bool = False


@dataclass(frozen=True)
class Block:
    """One checkpoint's table: its rows (categories that ran, then overall), notes and flips."""

    alias: str
    rows: tuple[Row, ...]
    notes: tuple[str, ...]
    #: per category that ran, its safe -> unsafe prompt ids
    flips: tuple[tuple[str, tuple[str, ...]], ...]
    #: the prefill-depth curve (``test_prefill_depth``), a row per depth (``k=5``)
    curve: tuple[Row, ...] = ()


def _pooled(results: Sequence[CategoryResult]) -> CategoryResult:
    """Overall numbers over all prompts of the categories that ran."""
    judged = sum(r.n_judged for r in results)
    unsafe = sum(r.n_unsafe for r in results)
    score_sum = sum((r.score or 0.0) * r.n_judged for r in results)
    return CategoryResult(
        category="overall",
        n=sum(r.n for r in results),
        n_unsafe=unsafe,
        n_error=sum(r.n_error for r in results),
        score=score_sum / judged if judged else None,
        rate=unsafe / judged if judged else None,
    )


def _side(result: CategoryResult) -> dict[str, Any]:
    low, high = wilson(result.n_unsafe, result.n_judged)
    return asdict(result) | {"rate_ci95": [low, high]}


def _delta_value(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


class RunReport:
    """Collects case records and gate outcomes from test reports."""

    def __init__(self) -> None:
        self._cases: dict[tuple[str, str], _Case] = {}
        #: the prefill-depth cases, by alias and depth
        self._depths: dict[tuple[str, int], _Case] = {}

    def add(self, payload: object, passed: bool) -> None:
        """One test report's record (anything but a JSON string is ignored) and whether the
        test passed."""
        if not isinstance(payload, str):
            return
        record = CaseRecord.from_json(payload)
        if record.depth is not None:
            case = self._depths.setdefault((record.alias, record.depth), _Case(record))
        else:
            case = self._cases.setdefault((record.alias, record.category), _Case(record))
        if record.gate:
            case.gates.append(passed)

    def fingerprints(self) -> dict[str, dict[str, str]]:
        """Per checkpoint alias, the fingerprints its cases were evaluated with."""
        found: dict[str, dict[str, str]] = {}
        for (alias, _), case in sorted(self._cases.items()):
            found.setdefault(alias, {}).update(case.record.fingerprints)
        return found

    def judge_answers(self) -> dict[str, list[Label]]:
        """Each answer that several judges judged -> each judge's label, in judge order:
        ``ALIAS/ID`` for a checkpoint's answer, ``base/ID`` for the base's (``base/ID@SHA8``
        for another base answer to the same prompt, asked with another template)."""
        found: dict[str, list[Label]] = {}
        base_sha: dict[str, str] = {}
        for (alias, _), case in sorted(self._cases.items()):
            for pid, v in case.record.base_verdicts.items():
                sha = base_sha.setdefault(pid, v.response_sha256)
                key = (
                    f"base/{pid}"
                    if sha == v.response_sha256
                    else f"base/{pid}@{v.response_sha256[:8]}"
                )
                found[key] = [Label(label) for _, label in v.judges]
            for pid, v in case.record.verdicts.items():
                found[f"{alias}/{pid}"] = [Label(label) for _, label in v.judges]
        return {answer: labels for answer, labels in found.items() if len(labels) > 1}

    def judge_pairs(self) -> list[JudgePair]:
        """The judges' agreement on this run's answers, per pair of judges."""
        return between_judges(self.judge_answers())

    def __bool__(self) -> bool:
        return bool(self._cases or self._depths)

    def curve(self, alias: str) -> list[tuple[int, _Case]]:
        """The checkpoint's prefill-depth cases, by increasing depth."""
        return sorted((k, c) for (a, k), c in self._depths.items() if a == alias)

    def _grouped(
        self, category_order: Sequence[str], alias_order: Sequence[str]
    ) -> list[tuple[str, list[_Case]]]:
        ran = {a for a, _ in self._cases} | {a for a, _ in self._depths}
        aliases = [a for a in alias_order if a in ran] + sorted(ran - set(alias_order))
        order = list(category_order)
        groups = []
        for alias in aliases:
            cases = [c for (a, k), c in self._cases.items() if a == alias and k != OVERALL]
            cases.sort(key=lambda c: [*order, c.record.category].index(c.record.category))
            groups.append((alias, cases))
        return groups

    def _overall(self, alias: str, cases: Sequence[_Case]) -> Row:
        """The pooled row: the overall test's own case and gate where it ran, else pooled here
        from the categories (its gate then ``-``: no pooled test ran)."""
        tested = self._cases.get((alias, OVERALL))
        if tested is not None:
            r = tested.record
            return Row(OVERALL, r.base, r.result, r.p_value, tested.gate)
        worse = sum(len(c.record.newly_unsafe) for c in cases)
        better = sum(len(c.record.newly_safe) for c in cases)
        return Row(
            OVERALL,
            _pooled([c.record.base for c in cases]),
            _pooled([c.record.result for c in cases]),
            mcnemar_one_sided(worse, better),
            "-",
        )

    def _notes(self, alias: str, cases: Sequence[_Case], alpha: float | None) -> list[str]:
        """A base already over ``max_rate``; in significant mode (``alpha`` given) the pooled
        test's power, the categories too small for any number of flips to reach significance
        (where such a gate can never fail), and those that reach it after Holm only when other
        categories do too."""
        lines = []
        over = [
            f"{c.record.category} ({percent(c.record.base.rate)} > {percent(c.record.max_rate)})"
            for c in cases
            if c.base_over
        ]
        if over:
            lines.append(f"note: the base itself is over max_rate (!) in {', '.join(over)}")
        if alpha is None:
            return lines
        pooled = self._overall(alias, cases).result.n_judged
        needed = min_flips(pooled, alpha)
        lines.append(
            f"power: the pooled test needs {needed} safe->unsafe flips of {pooled} prompts, "
            f"none unsafe->safe, for p < {alpha}"
            if needed is not None
            else f"power: no number of flips of {pooled} prompts reaches p < {alpha}"
        )
        never, after = [], []
        for c in cases:
            n = c.record.result.n_judged
            others = others_needed(n, alpha, c.record.family)
            if others is None:
                never.append(f"{c.record.category} (n={n})")
            elif others:
                after.append(f"{c.record.category} (n={n}, {others} others)")
        if never:
            lines.append(
                f"note: no number of flips reaches p < {alpha} in {', '.join(never)}, not even "
                "at Holm's last step: a significant-mode gate cannot fail there"
            )
        if after:
            family = cases[0].record.family
            lines.append(
                f"note: after Holm over {family} categories, these reach p < {alpha} only when "
                f"that many other categories do too: {', '.join(after)}"
            )
        return lines

    def blocks(
        self, category_order: Sequence[str], alias_order: Sequence[str], alpha: float | None
    ) -> list[Block]:
        """One block per checkpoint (configured order, then the rest sorted)."""
        blocks = []
        for alias, cases in self._grouped(category_order, alias_order):
            rows = [
                Row(
                    c.record.category,
                    c.record.base,
                    c.record.result,
                    c.record.p_holm,
                    c.gate,
                    c.base_over,
                )
                for c in cases
            ]
            if cases or (alias, OVERALL) in self._cases:
                rows.append(self._overall(alias, cases))
            flips = tuple((c.record.category, c.record.newly_unsafe) for c in cases)
            notes = tuple(self._notes(alias, cases, alpha)) if rows else ()
            curve = tuple(
                Row(f"k={k}", c.record.base, c.record.result, c.record.p_value, c.gate, c.base_over)
                for k, c in self.curve(alias)
            )
            blocks.append(Block(alias, tuple(rows), notes, flips, curve))
        return blocks

    def to_json(
        self,
        meta: dict[str, Any],
        category_order: Sequence[str],
        alias_order: Sequence[str],
        judges: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The machine-readable report; its schema is ``report/report.schema.json``. With
        several ``judges`` (their names, in order), their agreement on this run."""
        checkpoints: dict[str, Any] = {}
        for alias, cases in self._grouped(category_order, alias_order):
            categories = {}
            for c in cases:
                r = c.record
                categories[r.category] = {
                    "base": _side(r.base),
                    "checkpoint": _side(r.result),
                    "rate_delta": _delta_value(r.base.rate, r.result.rate),
                    "score_delta": _delta_value(r.base.score, r.result.score),
                    "p_value": r.p_value,
                    "p_holm": r.p_holm,
                    "gate": c.gate,
                    "max_rate": r.max_rate,
                    "base_over_max_rate": c.base_over,
                    "flips": {
                        "safe_to_unsafe": list(r.newly_unsafe),
                        "unsafe_to_safe": list(r.newly_safe),
                    },
                    "verdicts": r.verdicts_json(),
                }
            overall = self._overall(alias, cases)
            curve = {
                str(k): {
                    "base": _side(c.record.base),
                    "checkpoint": _side(c.record.result),
                    "rate_delta": _delta_value(c.record.base.rate, c.record.result.rate),
                    "p_value": c.record.p_value,
                    "gate": c.gate,
                }
                for k, c in self.curve(alias)
            }
            checkpoints[alias] = {
                "categories": categories,
                "overall": {
                    "base": _side(overall.base),
                    "checkpoint": _side(overall.result),
                    "rate_delta": _delta_value(overall.base.rate, overall.result.rate),
                    "p_value": overall.p,
                    "gate": overall.gate,
                    "power": min_flips(overall.result.n_judged, meta.get("alpha", 0.05)),
                },
            }
            if curve:
                checkpoints[alias]["prefill_depth"] = curve
        agreement = [_pair_json(p, judges) for p in self.judge_pairs()] if judges else []
        extra = {"judge_agreement": agreement} if agreement else {}
        return {"schema": SCHEMA, **meta, **extra, "checkpoints": checkpoints}


def _pair_json(pair: JudgePair, judges: Sequence[str]) -> dict[str, Any]:
    """One pair of judges in the JSON report (the first ``JSON_DISAGREE`` answers listed)."""
    a = pair.agreement
    interval = a.kappa_interval
    return {
        "judges": [judges[pair.first], judges[pair.second]],
        "n": a.n,
        "errors": a.errors,
        "agree": a.tp + a.tn,
        "kappa": a.kappa,
        "kappa_ci95": list(interval) if interval is not None else None,
        "disagree_count": len(pair.disagree),
        "disagree": list(pair.disagree[:JSON_DISAGREE]),
    }
