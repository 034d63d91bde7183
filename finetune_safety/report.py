"""Run reports, built from test reports so ``-n 2`` and one process report the same run.

Each suite test carries its case as a ``user_properties`` entry (which xdist ships to the
controller and JUnit XML records); the controller's reports are the only input here. From them:
the terminal delta table, the JSON report (schema in ``report.schema.json``) and Markdown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tabulate import tabulate

from finetune_safety.stats import mcnemar_one_sided, min_flips, wilson
from finetune_safety.suite import CaseResult, response_sha256
from finetune_safety.values import CategoryResult

PROPERTY = "finetune_safety"
SCHEMA = "finetune-safety-report/1"
HEADERS = [
    "category", "n", "base score", "score", "Δ score", "base rate", "rate [95% CI]", "Δ rate",
    "p (Holm)", "gate",
]  # fmt: skip


def _verdicts(records: Iterable[Any]) -> dict[str, list[Any]]:
    return {
        r.prompt.id: [r.verdict.score, str(r.verdict.label), response_sha256(r.response)]
        for r in records
    }


def case_property(case: CaseResult, gate: bool) -> tuple[str, str]:
    """The ``user_properties`` entry a suite test carries; ``gate`` marks threshold tests."""
    payload = {
        "alias": case.alias,
        "category": case.category,
        "gate": gate,
        "base": asdict(case.base),
        "result": asdict(case.result),
        "p_value": case.p_value,
        "p_holm": case.p_holm,
        "family": case.family,
        "newly_unsafe": list(case.newly_unsafe),
        "newly_safe": list(case.newly_safe),
        "verdicts": {"base": _verdicts(case.base_records), "checkpoint": _verdicts(case.records)},
    }
    return PROPERTY, json.dumps(payload, sort_keys=True)


@dataclass
class _Case:
    data: dict[str, Any]
    gates: list[bool] = field(default_factory=list)

    @property
    def base(self) -> CategoryResult:
        return CategoryResult(**self.data["base"])

    @property
    def result(self) -> CategoryResult:
        return CategoryResult(**self.data["result"])

    @property
    def gate(self) -> str:
        return "-" if not self.gates else ("PASS" if all(self.gates) else "FAIL")


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


def _num(value: float | None, fmt: str, scale: float = 1, unit: str = "") -> str:
    return "-" if value is None else format(value * scale, fmt) + unit


def _delta(a: float | None, b: float | None, fmt: str, scale: float = 1, unit: str = "") -> str:
    return "-" if a is None or b is None else format((b - a) * scale, fmt) + unit


def _p(p: float | None) -> str:
    return "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _side(result: CategoryResult) -> dict[str, Any]:
    low, high = wilson(result.n_unsafe, result.n_judged)
    return asdict(result) | {"rate_ci95": [low, high]}


class RunReport:
    """Collects case payloads and gate outcomes from reports; renders tables and files."""

    def __init__(self) -> None:
        self._cases: dict[tuple[str, str], _Case] = {}

    def add(self, user_properties: Iterable[tuple[str, object]], passed: bool) -> None:
        for name, value in user_properties:
            if name != PROPERTY or not isinstance(value, str):
                continue
            data = json.loads(value)
            case = self._cases.setdefault((data["alias"], data["category"]), _Case(data))
            if data["gate"]:
                case.gates.append(passed)

    def __bool__(self) -> bool:
        return bool(self._cases)

    def _grouped(
        self, category_order: Sequence[str], alias_order: Sequence[str]
    ) -> list[tuple[str, list[_Case]]]:
        ran = {a for a, _ in self._cases}
        aliases = [a for a in alias_order if a in ran] + sorted(ran - set(alias_order))
        order = list(category_order)
        groups = []
        for alias in aliases:
            cases = [c for (a, _), c in self._cases.items() if a == alias]
            cases.sort(key=lambda c: [*order, c.data["category"]].index(c.data["category"]))
            groups.append((alias, cases))
        return groups

    @staticmethod
    def _overall(cases: Sequence[_Case]) -> dict[str, Any]:
        worse = sum(len(c.data["newly_unsafe"]) for c in cases)
        better = sum(len(c.data["newly_safe"]) for c in cases)
        gates = [g for c in cases for g in c.gates]
        return {
            "base": _pooled([c.base for c in cases]),
            "result": _pooled([c.result for c in cases]),
            "p_value": mcnemar_one_sided(worse, better),
            "gate": "-" if not gates else ("PASS" if all(gates) else "FAIL"),
        }

    @staticmethod
    def _row(
        name: str, base: CategoryResult, result: CategoryResult, p: float | None, gate: str
    ) -> list[str]:
        low, high = wilson(result.n_unsafe, result.n_judged)
        interval = f" [{100 * low:.0f}-{100 * high:.0f}]" if result.n_judged else ""
        return [
            name,
            f"{result.n}" + (f" ({result.n_error} err)" if result.n_error else ""),
            _num(base.score, ".2f"),
            _num(result.score, ".2f"),
            _delta(base.score, result.score, "+.2f"),
            _num(base.rate, ".1f", 100, "%"),
            _num(result.rate, ".1f", 100, "%") + interval,
            _delta(base.rate, result.rate, "+.1f", 100, " pp"),
            _p(p),
            gate,
        ]

    def rows(self, cases: Sequence[_Case]) -> list[list[str]]:
        body = [
            self._row(c.data["category"], c.base, c.result, c.data["p_holm"], c.gate) for c in cases
        ]
        overall = self._overall(cases)
        body.append(
            self._row(
                "overall", overall["base"], overall["result"], overall["p_value"], overall["gate"]
            )
        )
        return body

    def notes(self, cases: Sequence[_Case], alpha: float | None) -> list[str]:
        """In significant mode (``alpha`` given): categories too small for any number of flips
        to reach significance after Holm, where such a gate can never fail."""
        if alpha is None:
            return []
        small = []
        for c in cases:
            n, family = c.result.n_judged, c.data["family"]
            needed = min_flips(n, alpha, family)
            if needed is None:
                small.append(f"{c.data['category']} (n={n})")
        if not small:
            return []
        family = cases[0].data["family"]
        return [
            f"note: no number of flips reaches p < {alpha} after Holm over {family} categories "
            f"in {', '.join(small)}: a significant-mode gate cannot fail there"
        ]

    def table(
        self, category_order: Sequence[str], alias_order: Sequence[str], alpha: float | None
    ) -> str:
        """One table per checkpoint (configured order): the categories that ran, then overall."""
        blocks = []
        for alias, cases in self._grouped(category_order, alias_order):
            text = tabulate(self.rows(cases), headers=HEADERS, disable_numparse=True)
            blocks.append("\n".join([alias, text, *self.notes(cases, alpha)]))
        return "\n\n".join(blocks)

    def to_json(
        self, meta: dict[str, Any], category_order: Sequence[str], alias_order: Sequence[str]
    ) -> dict[str, Any]:
        """The machine-readable report; its schema is ``finetune_safety/report.schema.json``."""
        checkpoints: dict[str, Any] = {}
        for alias, cases in self._grouped(category_order, alias_order):
            categories = {}
            for c in cases:
                d = c.data
                categories[d["category"]] = {
                    "base": _side(c.base),
                    "checkpoint": _side(c.result),
                    "rate_delta": _delta_value(c.base.rate, c.result.rate),
                    "score_delta": _delta_value(c.base.score, c.result.score),
                    "p_value": d["p_value"],
                    "p_holm": d["p_holm"],
                    "gate": c.gate,
                    "flips": {
                        "safe_to_unsafe": d["newly_unsafe"],
                        "unsafe_to_safe": d["newly_safe"],
                    },
                    "verdicts": d["verdicts"],
                }
            overall = self._overall(cases)
            checkpoints[alias] = {
                "categories": categories,
                "overall": {
                    "base": _side(overall["base"]),
                    "checkpoint": _side(overall["result"]),
                    "rate_delta": _delta_value(overall["base"].rate, overall["result"].rate),
                    "p_value": overall["p_value"],
                    "gate": overall["gate"],
                },
            }
        return {"schema": SCHEMA, **meta, "checkpoints": checkpoints}

    def to_markdown(
        self, category_order: Sequence[str], alias_order: Sequence[str], alpha: float | None
    ) -> str:
        """GitHub-flavoured Markdown: a table per checkpoint and its safe -> unsafe flips."""
        parts = ["## finetune-safety: checkpoint vs base\n"]
        for alias, cases in self._grouped(category_order, alias_order):
            parts.append(f"### {alias}\n")
            parts.append(
                tabulate(
                    self.rows(cases), headers=HEADERS, tablefmt="github", disable_numparse=True
                )
                + "\n"
            )
            parts += [f"> {note}\n" for note in self.notes(cases, alpha)]
            flips = [
                f"- **{c.data['category']}**: {', '.join(c.data['newly_unsafe'])}"
                for c in cases
                if c.data["newly_unsafe"]
            ]
            if flips:
                parts.append(
                    "Safe for the base, unsafe for the checkpoint:\n\n" + "\n".join(flips) + "\n"
                )
        return "\n".join(parts)


def _delta_value(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a
