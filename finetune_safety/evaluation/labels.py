"""A labelled set (JSONL of ``id``, ``prompt``, ``response``, ``label``, optional ``category``,
``kind`` and ``source``), judged through the store, and the judge's agreement with it, overall,
per category, per kind and per source. ``finetune-safety judge-check`` and the gate's
``test_judge_agreement`` both use it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from finetune_safety._util.textfile import json_object, numbered_lines
from finetune_safety.errors import LabelsError
from finetune_safety.evaluation.agreement import Agreement
from finetune_safety.evaluation.pipeline import Evaluator
from finetune_safety.evaluation.store import Store
from finetune_safety.judges import Judge
from finetune_safety.models import Decoding
from finetune_safety.values import Label, Prompt, Verdict

#: Disagreeing ids listed before the rest is only counted.
SHOWN_IDS = 20
_REQUIRED = ("id", "prompt", "response", "label")
_OPTIONAL = ("category", "kind", "source")
_GOLD = {str(Label.SAFE): Label.SAFE, str(Label.UNSAFE): Label.UNSAFE}


@dataclass(frozen=True)
class LabelledItem:
    """One answer a reader labelled ``safe`` or ``unsafe``."""

    id: str
    prompt: str
    response: str
    label: Label
    category: str | None = None
    kind: str | None = None
    source: str | None = None


def _item(path: Path, line: int, raw: str) -> LabelledItem:
    row = json_object(raw, path, line, LabelsError)
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise LabelsError(f"missing key(s) {missing}", path, line)
    unknown = sorted(set(row) - {*_REQUIRED, *_OPTIONAL})
    if unknown:
        raise LabelsError(
            f"unknown key(s) {unknown}; known: {[*_REQUIRED, *_OPTIONAL]}", path, line
        )
    for key in (*_REQUIRED, *_OPTIONAL):
        value = row.get(key)
        if key in row and not (isinstance(value, str) and value.strip()):
            raise LabelsError(f"{key}: expected non-empty text, got {value!r}", path, line)
    if row["label"] not in _GOLD:
        raise LabelsError(f"label: expected 'safe' or 'unsafe', got {row['label']!r}", path, line)
    return LabelledItem(
        row["id"],
        row["prompt"],
        row["response"],
        _GOLD[row["label"]],
        row.get("category"),
        row.get("kind"),
        row.get("source"),
    )


def load_labels(path: Path) -> list[LabelledItem]:
    """The file's items; a bad row, a repeated id or an empty file is a ``LabelsError`` naming
    the file and line. Blank lines are skipped."""
    items: list[LabelledItem] = []
    first: dict[str, int] = {}
    for line, raw in numbered_lines(path, LabelsError):
        if not raw.strip():
            continue
        item = _item(path, line, raw)
        if item.id in first:
            raise LabelsError(
                f"duplicate id {item.id!r} (first on line {first[item.id]})", path, line
            )
        first[item.id] = line
        items.append(item)
    if not items:
        raise LabelsError("no labelled items", path)
    return items


def judge_items(
    items: Sequence[LabelledItem], judge: Judge, store: Store, cache_dir: Path, progress: bool
) -> tuple[list[Verdict], int]:
    """Each item's verdict, and how many were judged now: stored verdicts are reused, as in
    any run, so a second check judges nothing."""
    prompts = [Prompt(i.id, i.category or "", i.prompt) for i in items]
    evaluator = Evaluator(store, judge, Decoding(), cache_dir, progress=progress)
    return evaluator.verdicts(prompts, [i.response for i in items])


@dataclass(frozen=True)
class LabelCheck:
    """A judge's verdicts on a labelled set."""

    items: tuple[LabelledItem, ...]
    verdicts: tuple[Verdict, ...]

    def agreement(self, where: Callable[[LabelledItem], bool] = lambda _: True) -> Agreement:
        pairs = zip(self.items, self.verdicts, strict=True)
        return Agreement.of((i.label, v.label) for i, v in pairs if where(i))

    def disagreeing(self) -> list[str]:
        """The ids where the judge gave the other label (errors are not disagreements)."""
        pairs = zip(self.items, self.verdicts, strict=True)
        return [i.id for i, v in pairs if v.label not in (i.label, Label.ERROR)]

    def groups(self, field: str) -> dict[str, Agreement]:
        """Agreement per value of ``category``, ``kind`` or ``source``, in order of first
        appearance."""
        values = dict.fromkeys(getattr(i, field) for i in self.items if getattr(i, field))
        return {v: self.agreement(partial(_has, field, v)) for v in values}


def _has(field: str, value: str, item: LabelledItem) -> bool:
    return bool(getattr(item, field) == value)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def kappa_text(a: Agreement) -> str:
    """``kappa 0.600 (95% CI 0.443 to 0.757)``, or ``kappa n/a`` when undefined."""
    interval = a.kappa_interval
    if a.kappa is None or interval is None:
        return "kappa n/a"
    return f"kappa {a.kappa:.3f} (95% CI {interval[0]:.3f} to {interval[1]:.3f})"


def _row(name: str, a: Agreement, width: int) -> str:
    return (
        f"{name:<{width}} {a.n:>5} {a.tp:>4} {a.fp:>4} {a.fn:>4} {a.tn:>4} {a.errors:>6}  "
        f"{_figure(a.precision):>9} {_figure(a.recall):>6} {_figure(a.f1):>5} "
        f"{_figure(a.accuracy):>8}  {kappa_text(a).removeprefix('kappa ')}"
    )


def format_check(check: LabelCheck) -> str:
    """The figures: n and the matrix, precision/recall/F1 for unsafe, accuracy and kappa,
    overall, per category, per kind and per source; the error count and the disagreeing ids."""
    whole = check.agreement()
    lines = [
        f"n {whole.n} judged ({whole.errors} judge error(s) left out)",
        "confusion matrix (rows: judge, columns: label)",
        f"  {'':<14} {'unsafe':>8} {'safe':>8}",
        f"  {'judge unsafe':<14} {whole.tp:>8} {whole.fp:>8}",
        f"  {'judge safe':<14} {whole.fn:>8} {whole.tn:>8}",
        f"unsafe: precision {_figure(whole.precision)}, recall {_figure(whole.recall)}, "
        f"F1 {_figure(whole.f1)}; accuracy {_figure(whole.accuracy)}",
        f"{kappa_text(whole)} (Cohen's large-sample SE)",
    ]
    for field in ("category", "kind", "source"):
        groups = check.groups(field)
        if groups:
            width = max(24, *map(len, groups))
            header = (
                f"{'':<{width}} {'n':>5} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4} {'errors':>6}  "
                f"{'precision':>9} {'recall':>6} {'F1':>5} {'accuracy':>8}  kappa (95% CI)"
            )
            rows = [_row(k, a, width) for k, a in groups.items()]
            lines += ["", f"per {field}", header, *rows]
    ids = check.disagreeing()
    shown = ", ".join(ids[:SHOWN_IDS]) + (
        f", ... ({len(ids)} in all)" if len(ids) > SHOWN_IDS else ""
    )
    lines += [
        "",
        f"judge errors: {whole.errors}",
        f"disagreeing: {len(ids)}" + (f": {shown}" if ids else ""),
    ]
    return "\n".join(lines)
