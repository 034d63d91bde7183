"""``finetune-safety diff A B``: which prompts flipped between two model versions.

A and B are each a saved run (a ``--safety-report-json`` file: the checkpoint side of every
case) or a verdict-snapshot directory (``safety_tests/__snapshots__/test_safety`` of two
commits). Cases are matched by checkpoint alias and category; prompts by id. Snapshots hold
verdicts only; two reports also tell "response changed, verdict unchanged" (from the response
hashes they record).

A flip means the model changed only if everything else stayed: so ``diff`` first compares what
the runs record of how they were made (judge ids, benchmark, decoding, the prompts each case
asked) and prints each difference. A different judge or benchmark makes the flips meaningless
(a judge change can hide flips or invent them): that stops ``diff`` unless it is allowed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune_safety.benchmarks import ADVBENCH_CATEGORY
from finetune_safety.errors import LocatedError
from finetune_safety.report.record import verdict_rows
from finetune_safety.values import CATEGORIES, id_order

#: case ("alias/category") -> prompt id -> (label, response sha256 or None in snapshots)
Labels = dict[str, dict[str, tuple[str, str | None]]]
_BRACKET = re.compile(r"\[(.+)\]\.json$")
#: Cases named in the line on differing prompt sets; the rest are counted.
SHOWN_CASES = 5


class DiffError(LocatedError):
    """An input is neither a run report nor a snapshot directory."""


@dataclass(frozen=True)
class Run:
    """What ``diff`` reads of one run: its verdicts, and what it records of how they were made
    (None where it records nothing: snapshots hold no benchmark, older reports no judge id)."""

    labels: Labels
    judge_ids: frozenset[str] | None = None
    judge_spec: str | None = None
    benchmark: str | None = None
    decoding: dict[str, Any] | None = None


def _from_report(path: Path) -> Run:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        checkpoints = data["checkpoints"]
        labels: Labels = {
            f"{alias}/{category}": {
                pid: (v.label, v.response_sha256)
                for pid, v in verdict_rows(case["verdicts"]["checkpoint"]).items()
            }
            for alias, run in checkpoints.items()
            for category, case in run["categories"].items()
        }
        judge_id = data.get("judge_id")
        decoding = {
            **data.get("decoding", {}),
            **({"dtype": data["dtype"]} if "dtype" in data else {}),
        }
        return Run(
            labels,
            frozenset([str(judge_id)]) if judge_id is not None else None,
            str(data["judge"]) if "judge" in data else None,
            str(data["benchmark"]) if "benchmark" in data else None,
            decoding or None,
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DiffError(f"not a finetune-safety run report ({exc!r})", path) from None


def _case_key(test_id: str) -> str:
    """``alias-category`` (a snapshot's parametrization id) as ``alias/category``, as in reports."""
    for category in (*CATEGORIES, ADVBENCH_CATEGORY):
        if test_id.endswith(f"-{category}"):
            return f"{test_id[: -len(category) - 1]}/{category}"
    return test_id


def _judges(value: Any) -> set[str]:
    return {value} if isinstance(value, str) else {str(j) for j in value}


def _from_snapshots(directory: Path) -> Run:
    labels: Labels = {}
    judges: set[str] = set()
    for path in sorted(directory.rglob("*.json")):
        match = _BRACKET.search(path.name)
        if match is None:
            continue
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            if "verdicts" in entries:  # judge once per file; the case named inside
                case = f"{entries['checkpoint']}/{entries['category']}"
                judges |= _judges(entries["judge"])
                entries = entries["verdicts"]
            else:  # the layout before: the case from the file name, the judge per prompt
                case = _case_key(match.group(1))
                judges |= {str(entry["judge"]) for entry in entries.values()}
            labels[case] = {pid: (str(entry["label"]), None) for pid, entry in entries.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DiffError(f"not a verdict snapshot ({exc!r})", path) from None
    if not labels:
        raise DiffError("no verdict snapshots (*[<checkpoint>-<category>].json)", directory)
    return Run(labels, frozenset(judges))


def load(path: Path) -> Run:
    """A run from a report file or a snapshot directory."""
    if path.is_dir():
        return _from_snapshots(path)
    if path.is_file():
        return _from_report(path)
    raise DiffError("no such file or directory", path)


def _shown(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def _judge_difference(a: Run, b: Run) -> tuple[str | None, bool]:
    """The line on the judges, and whether it makes the runs incomparable."""
    if a.judge_ids is not None and b.judge_ids is not None:
        if a.judge_ids == b.judge_ids:
            return None, False
        return f"judge differs: A {_shown(a.judge_ids)}; B {_shown(b.judge_ids)}", True
    if a.judge_spec is not None and b.judge_spec is not None:  # two reports, one or both older
        if a.judge_spec == b.judge_spec:
            return None, False
        return f"judge differs: A {a.judge_spec}; B {b.judge_spec}", True
    missing = "A" if a.judge_ids is None else "B"
    return f"judge not checked: {missing} records no judge id (an older report)", False


def differences(a: Run, b: Run) -> tuple[list[str], list[str]]:
    """How the runs were made differently, one line each, and which of those (judge,
    benchmark) make their flips meaningless."""
    lines, blocking = [], []
    judge, stops = _judge_difference(a, b)
    if judge is not None:
        lines.append(judge)
        if stops:
            blocking.append("judges")
    if a.benchmark is not None and b.benchmark is not None and a.benchmark != b.benchmark:
        lines.append(f"benchmark differs: A {a.benchmark}; B {b.benchmark}")
        blocking.append("benchmarks")
    if a.decoding is not None and b.decoding is not None:
        changed = [
            f"{key} A {a.decoding[key]}, B {b.decoding[key]}"
            for key in sorted(a.decoding.keys() & b.decoding.keys())
            if a.decoding[key] != b.decoding[key]
        ]
        if changed:
            lines.append(f"decoding differs: {'; '.join(changed)}")
    asked = [
        f"{case} (A {len(a.labels[case])}, B {len(b.labels[case])}, both "
        f"{len(a.labels[case].keys() & b.labels[case].keys())})"
        for case in sorted(a.labels.keys() & b.labels.keys())
        if a.labels[case].keys() != b.labels[case].keys()
    ]
    if asked:
        shown = ", ".join(asked[:SHOWN_CASES])
        more = f", and {len(asked) - SHOWN_CASES} more" if len(asked) > SHOWN_CASES else ""
        lines.append(
            f"prompts differ in {len(asked)} case(s), compared on the prompts both asked: "
            f"{shown}{more}"
        )
    return lines, blocking


@dataclass(frozen=True)
class CaseDiff:
    case: str
    newly_unsafe: tuple[str, ...]
    newly_safe: tuple[str, ...]
    #: an ``error`` (never counted as safe) that is now unsafe: new unsafe too, named apart.
    unsafe_after_error: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: same verdict, another response (reports only: snapshots hold no response hashes).
    response_changed: tuple[str, ...] = ()


def compare(before: Labels, after: Labels) -> list[CaseDiff]:
    """Per case present in both: flips between safe and unsafe, and prompts added or removed."""
    diffs = []
    for case in sorted(before.keys() & after.keys()):
        a, b = before[case], after[case]
        common = sorted((pid for pid in b if pid in a), key=id_order)

        def flipped(old: str, new: str) -> tuple[str, ...]:
            return tuple(p for p in common if a[p][0] == old and b[p][0] == new)  # noqa: B023

        diffs.append(
            CaseDiff(
                case=case,
                newly_unsafe=flipped("safe", "unsafe"),
                newly_safe=flipped("unsafe", "safe"),
                unsafe_after_error=flipped("error", "unsafe"),
                added=tuple(sorted((p for p in b if p not in a), key=id_order)),
                removed=tuple(sorted((p for p in a if p not in b), key=id_order)),
                response_changed=tuple(
                    p
                    for p in common
                    if a[p][0] == b[p][0] and None not in (a[p][1], b[p][1]) and a[p][1] != b[p][1]
                ),
            )
        )
    return diffs


def render(diffs: list[CaseDiff], only_before: set[str], only_after: set[str]) -> str:
    lines = []
    for d in diffs:
        changes = [
            f"safe -> unsafe: {', '.join(d.newly_unsafe)}" if d.newly_unsafe else "",
            f"unsafe -> safe: {', '.join(d.newly_safe)}" if d.newly_safe else "",
            f"error -> unsafe: {', '.join(d.unsafe_after_error)}" if d.unsafe_after_error else "",
            f"added: {', '.join(d.added)}" if d.added else "",
            f"removed: {', '.join(d.removed)}" if d.removed else "",
            f"response changed, verdict unchanged: {', '.join(d.response_changed)}"
            if d.response_changed
            else "",
        ]
        shown = [c for c in changes if c]
        lines.append(f"{d.case}: " + ("; ".join(shown) if shown else "no flips"))
    lines += [f"{case}: only in A" for case in sorted(only_before)]
    lines += [f"{case}: only in B" for case in sorted(only_after)]
    unsafe = sum(len(d.newly_unsafe) + len(d.unsafe_after_error) for d in diffs)
    safe = sum(len(d.newly_safe) for d in diffs)
    lines.append(f"{unsafe} prompt(s) turned unsafe, {safe} turned safe")
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """What ``diff`` says: how the runs were made differently (printed first), why their flips
    cannot be read as the model's (None when they can), the flips, and the exit code."""

    differences: tuple[str, ...]
    incomparable: str | None
    text: str
    code: int


def run(a: Path, b: Path) -> Comparison:
    """The comparison of A and B; exit code 1 when any prompt turned unsafe, else 0."""
    before, after = load(a), load(b)
    lines, blocking = differences(before, after)
    incomparable = None
    if blocking:
        incomparable = (
            f"A and B differ in their {' and '.join(blocking)}: the flips would mix that change "
            "with the model's; pass --allow-different-judge (or --force) to compare them anyway"
        )
    diffs = compare(before.labels, after.labels)
    only_a, only_b = set(before.labels) - set(after.labels), set(after.labels) - set(before.labels)
    text = render(diffs, only_a, only_b)
    code = int(any(d.newly_unsafe or d.unsafe_after_error for d in diffs))
    return Comparison(tuple(lines), incomparable, text, code)
