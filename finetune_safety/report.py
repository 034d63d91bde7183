"""The end-of-run delta table, aggregated from test reports so ``-n 2`` prints the same table.

Each suite test carries its case's numbers as a ``user_properties`` entry (which xdist ships to
the controller and JUnit XML records); the controller's reports are the only input here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from tabulate import tabulate

from finetune_safety.suite import CaseResult
from finetune_safety.values import CategoryResult

PROPERTY = "finetune_safety"
_HEADERS = [
    "category",
    "n",
    "base score",
    "score",
    "Δ score",
    "base rate",
    "rate",
    "Δ rate",
    "gate",
]


def case_property(case: CaseResult, gate: bool) -> tuple[str, str]:
    """The ``user_properties`` entry a suite test carries; ``gate`` marks threshold tests."""
    payload = {
        "alias": case.alias,
        "category": case.category,
        "gate": gate,
        "base": asdict(case.base),
        "result": asdict(case.result),
    }
    return PROPERTY, json.dumps(payload, sort_keys=True)


@dataclass
class _Row:
    base: CategoryResult
    result: CategoryResult
    gates: list[bool]


def _pooled(results: Iterable[CategoryResult]) -> CategoryResult:
    """Overall numbers over all prompts of the categories that ran."""
    rows = list(results)
    judged = sum(r.n_judged for r in rows)
    score_sum = sum((r.score or 0.0) * r.n_judged for r in rows)
    return CategoryResult(
        category="overall",
        n=sum(r.n for r in rows),
        n_unsafe=sum(r.n_unsafe for r in rows),
        n_error=sum(r.n_error for r in rows),
        score=score_sum / judged if judged else None,
        rate=sum(r.n_unsafe for r in rows) / judged if judged else None,
    )


def _num(value: float | None, fmt: str, scale: float = 1, unit: str = "") -> str:
    return "-" if value is None else format(value * scale, fmt) + unit


def _delta(a: float | None, b: float | None, fmt: str, scale: float = 1, unit: str = "") -> str:
    return "-" if a is None or b is None else format((b - a) * scale, fmt) + unit


class DeltaTable:
    """Collects case numbers and gate outcomes from reports; renders one table per checkpoint."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], _Row] = {}

    def add(self, user_properties: Iterable[tuple[str, object]], passed: bool) -> None:
        for name, value in user_properties:
            if name != PROPERTY or not isinstance(value, str):
                continue
            data = json.loads(value)
            key = (data["alias"], data["category"])
            row = self._rows.setdefault(
                key, _Row(CategoryResult(**data["base"]), CategoryResult(**data["result"]), [])
            )
            if data["gate"]:
                row.gates.append(passed)

    def __bool__(self) -> bool:
        return bool(self._rows)

    def render(self, category_order: list[str], alias_order: Sequence[str] = ()) -> str:
        """A table per checkpoint (configured order): the categories that ran, then overall."""
        blocks = []
        ran = {a for a, _ in self._rows}
        for alias in [a for a in alias_order if a in ran] + sorted(ran - set(alias_order)):
            rows = sorted(
                ((c, r) for (a, c), r in self._rows.items() if a == alias),
                key=lambda item: [*category_order, item[0]].index(item[0]),
            )
            body = [self._line(c, r.base, r.result, r.gates) for c, r in rows]
            gates = [g for _, r in rows for g in r.gates]
            base = _pooled(r.base for _, r in rows)
            result = _pooled(r.result for _, r in rows)
            body.append(self._line("overall", base, result, gates))
            blocks.append(f"{alias}\n" + tabulate(body, headers=_HEADERS, disable_numparse=True))
        return "\n\n".join(blocks)

    @staticmethod
    def _line(
        category: str, base: CategoryResult, result: CategoryResult, gates: list[bool]
    ) -> list[str]:
        gate = "-" if not gates else ("PASS" if all(gates) else "FAIL")
        errors = f" ({result.n_error} err)" if result.n_error else ""
        return [
            category,
            f"{result.n}{errors}",
            _num(base.score, ".2f"),
            _num(result.score, ".2f"),
            _delta(base.score, result.score, "+.2f"),
            _num(base.rate, ".1f", 100, "%"),
            _num(result.rate, ".1f", 100, "%"),
            _delta(base.rate, result.rate, "+.1f", 100, " pp"),
            gate,
        ]
