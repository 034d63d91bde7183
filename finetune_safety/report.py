"""Run reports, built from test reports so ``-n 2`` and one process report the same run.

Each suite test carries its case as a JSON payload in an attribute of its test report (which
xdist ships to the controller, and JUnit XML leaves out: JUnit gets a few small numbers only);
the controller's reports are the only input here. From them: the terminal delta table (at most
100 columns), the JSON report (schema in ``report.schema.json``) and Markdown.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tabulate import tabulate

from finetune_safety.case import CaseResult, response_sha256
from finetune_safety.config import Thresholds
from finetune_safety.metrics import OVERALL
from finetune_safety.stats import mcnemar_one_sided, min_flips, wilson
from finetune_safety.values import CategoryResult

#: The test report attribute that carries a case's payload.
PROPERTY = "finetune_safety"
SCHEMA = "finetune-safety-report/1"
#: Rates in percent, score as base->checkpoint, n as judged/prompts; p Holm-adjusted per category
#: (the overall row's is its own pooled test). Fits 100 columns with HEx-PHI's longest slug.
HEADERS = ["category", "n", "score", "base", "rate [95% CI]", "Δ pp", "p", "gate"]
WIDTH = 100
#: Flipped prompt ids listed per case in Markdown; the rest are counted.
MD_FLIPS = 10


def _verdicts(records: Iterable[Any]) -> dict[str, list[Any]]:
    return {
        r.prompt.id: [r.verdict.score, str(r.verdict.label), response_sha256(r.response)]
        for r in records
    }


def case_payload(
    case: CaseResult,
    gate: bool,
    limits: Thresholds | None = None,
    fingerprints: dict[str, str] | None = None,
) -> str:
    """The payload a suite test's report carries; ``gate`` marks threshold tests. The pooled
    ``overall`` case carries no per-prompt verdicts (its categories carry them)."""
    max_rate = (limits or Thresholds()).max_rate
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
        "max_rate": max_rate,
        "fingerprints": fingerprints or {},
        "verdicts": {}
        if case.category == OVERALL
        else {"base": _verdicts(case.base_records), "checkpoint": _verdicts(case.records)},
    }
    return json.dumps(payload, sort_keys=True)


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

    @property
    def base_over(self) -> bool:
        """The base itself is over this case's ``max_rate``."""
        limit, rate = self.data.get("max_rate"), self.base.rate
        return limit is not None and rate is not None and rate > limit + 1e-12


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

    def add(self, payload: object, passed: bool) -> None:
        """One test report's payload (anything else is ignored) and whether the test passed."""
        if not isinstance(payload, str):
            return
        data = json.loads(payload)
        case = self._cases.setdefault((data["alias"], data["category"]), _Case(data))
        if data["gate"]:
            case.gates.append(passed)

    def fingerprints(self) -> dict[str, dict[str, str]]:
        """Per checkpoint alias, the fingerprints its cases were evaluated with."""
        found: dict[str, dict[str, str]] = {}
        for (alias, _), case in sorted(self._cases.items()):
            found.setdefault(alias, {}).update(case.data.get("fingerprints", {}))
        return found

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
            cases = [c for (a, k), c in self._cases.items() if a == alias and k != OVERALL]
            cases.sort(key=lambda c: [*order, c.data["category"]].index(c.data["category"]))
            groups.append((alias, cases))
        return groups

    def _overall(self, alias: str, cases: Sequence[_Case]) -> dict[str, Any]:
        """The pooled row: the overall test's own case and gate where it ran, else pooled here
        from the categories (its gate then ``-``: no pooled test ran)."""
        tested = self._cases.get((alias, OVERALL))
        if tested is not None:
            return {
                "base": tested.base,
                "result": tested.result,
                "p_value": tested.data["p_value"],
                "gate": tested.gate,
            }
        worse = sum(len(c.data["newly_unsafe"]) for c in cases)
        better = sum(len(c.data["newly_safe"]) for c in cases)
        return {
            "base": _pooled([c.base for c in cases]),
            "result": _pooled([c.result for c in cases]),
            "p_value": mcnemar_one_sided(worse, better),
            "gate": "-",
        }

    @staticmethod
    def _row(
        name: str,
        base: CategoryResult,
        result: CategoryResult,
        p: float | None,
        gate: str,
        base_over: bool = False,
    ) -> list[str]:
        """Score as ``base->checkpoint``, rates in percent; ``!`` marks a base over max_rate."""
        low, high = wilson(result.n_unsafe, result.n_judged)
        interval = f" [{100 * low:.0f}-{100 * high:.0f}]" if result.n_judged else ""
        return [
            name,
            f"{result.n_judged}/{result.n}",
            f"{_num(base.score, '.2f')}->{_num(result.score, '.2f')}",
            _num(base.rate, ".1f", 100) + ("!" if base_over else ""),
            _num(result.rate, ".1f", 100) + interval,
            _delta(base.rate, result.rate, "+.1f", 100),
            _p(p),
            gate,
        ]

    def rows(self, alias: str, cases: Sequence[_Case]) -> list[list[str]]:
        body = [
            self._row(c.data["category"], c.base, c.result, c.data["p_holm"], c.gate, c.base_over)
            for c in cases
        ]
        overall = self._overall(alias, cases)
        body.append(
            self._row(
                OVERALL, overall["base"], overall["result"], overall["p_value"], overall["gate"]
            )
        )
        return body

    def notes(self, alias: str, cases: Sequence[_Case], alpha: float | None) -> list[str]:
        """A base already over ``max_rate``; in significant mode (``alpha`` given) the pooled
        test's power and the categories too small for any number of flips to reach
        significance after Holm, where such a gate can never fail."""
        lines = []
        over = [
            f"{c.data['category']} ({_num(c.base.rate, '.1f', 100, '%')} > "
            f"{_num(c.data['max_rate'], '.1f', 100, '%')})"
            for c in cases
            if c.base_over
        ]
        if over:
            lines.append(f"note: the base itself is over max_rate (!) in {', '.join(over)}")
        if alpha is None:
            return lines
        pooled = self._overall(alias, cases)["result"].n_judged
        needed = min_flips(pooled, alpha)
        lines.append(
            f"power: the pooled test needs {needed} net safe->unsafe flips of {pooled} prompts "
            f"for p < {alpha}"
            if needed is not None
            else f"power: no number of flips of {pooled} prompts reaches p < {alpha}"
        )
        small = []
        for c in cases:
            n, family = c.result.n_judged, c.data["family"]
            needed = min_flips(n, alpha, family)
            if needed is None:
                small.append(f"{c.data['category']} (n={n})")
        if small:
            family = cases[0].data["family"]
            lines.append(
                f"note: no number of flips reaches p < {alpha} after Holm over {family} "
                f"categories in {', '.join(small)}: a significant-mode gate cannot fail there"
            )
        return lines

    def table(
        self, category_order: Sequence[str], alias_order: Sequence[str], alpha: float | None
    ) -> str:
        """One table per checkpoint (configured order): the categories that ran, then overall."""
        blocks = []
        for alias, cases in self._grouped(category_order, alias_order):
            text = tabulate(self.rows(alias, cases), headers=HEADERS, disable_numparse=True)
            notes = [textwrap.fill(n, WIDTH) for n in self.notes(alias, cases, alpha)]
            blocks.append("\n".join([alias, text, *notes]))
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
                    "max_rate": d["max_rate"],
                    "base_over_max_rate": c.base_over,
                    "flips": {
                        "safe_to_unsafe": d["newly_unsafe"],
                        "unsafe_to_safe": d["newly_safe"],
                    },
                    "verdicts": d["verdicts"],
                }
            overall = self._overall(alias, cases)
            checkpoints[alias] = {
                "categories": categories,
                "overall": {
                    "base": _side(overall["base"]),
                    "checkpoint": _side(overall["result"]),
                    "rate_delta": _delta_value(overall["base"].rate, overall["result"].rate),
                    "p_value": overall["p_value"],
                    "gate": overall["gate"],
                    "power": min_flips(overall["result"].n_judged, meta.get("alpha", 0.05)),
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
            rows = self.rows(alias, cases)
            parts.append(
                tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True) + "\n"
            )
            parts += [f"> {note}\n" for note in self.notes(alias, cases, alpha)]
            flips = [_md_flips(c.data["category"], c.data["newly_unsafe"]) for c in cases]
            flips = [line for line in flips if line]
            if flips:
                parts.append(
                    "Safe for the base, unsafe for the checkpoint:\n\n" + "\n".join(flips) + "\n"
                )
        return "\n".join(parts)


def _md_flips(category: str, ids: Sequence[str]) -> str:
    """``- **malware** (12): malware-1, ..., and 2 more``; empty when nothing flipped."""
    if not ids:
        return ""
    more = f", and {len(ids) - MD_FLIPS} more" if len(ids) > MD_FLIPS else ""
    return f"- **{category}** ({len(ids)}): {', '.join(ids[:MD_FLIPS])}{more}"


def _delta_value(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a
