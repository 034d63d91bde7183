"""``finetune-safety diff A B``: which prompts flipped between two model versions.

A and B are each a saved run (a ``--safety-report-json`` file: the checkpoint side of every
case) or a verdict-snapshot directory (``safety_tests/__snapshots__/test_safety`` of two
commits). Cases are matched by checkpoint alias and category; prompts by id. Snapshots hold
verdicts only; two reports also tell "response changed, verdict unchanged" (from the response
hashes they record).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from finetune_safety.benchmarks import ADVBENCH_CATEGORY
from finetune_safety.errors import LocatedError
from finetune_safety.report.record import verdict_rows
from finetune_safety.values import CATEGORIES, id_order

#: case ("alias/category") -> prompt id -> (label, response sha256 or None in snapshots)
Labels = dict[str, dict[str, tuple[str, str | None]]]
_BRACKET = re.compile(r"\[(.+)\]\.json$")


class DiffError(LocatedError):
    """An input is neither a run report nor a snapshot directory."""


def _from_report(path: Path) -> Labels:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        checkpoints = data["checkpoints"]
        return {
            f"{alias}/{category}": {
                pid: (v.label, v.response_sha256)
                for pid, v in verdict_rows(case["verdicts"]["checkpoint"]).items()
            }
            for alias, run in checkpoints.items()
            for category, case in run["categories"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DiffError(f"not a finetune-safety run report ({exc!r})", path) from None


def _case_key(test_id: str) -> str:
    """``alias-category`` (a snapshot's parametrization id) as ``alias/category``, as in reports."""
    for category in (*CATEGORIES, ADVBENCH_CATEGORY):
        if test_id.endswith(f"-{category}"):
            return f"{test_id[: -len(category) - 1]}/{category}"
    return test_id


def _from_snapshots(directory: Path) -> Labels:
    labels: Labels = {}
    for path in sorted(directory.rglob("*.json")):
        match = _BRACKET.search(path.name)
        if match is None:
            continue
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            if "verdicts" in entries:  # judge once per file; the case named inside
                case = f"{entries['checkpoint']}/{entries['category']}"
                entries = entries["verdicts"]
            else:  # the layout before: the case from the file name
                case = _case_key(match.group(1))
            labels[case] = {pid: (str(entry["label"]), None) for pid, entry in entries.items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DiffError(f"not a verdict snapshot ({exc!r})", path) from None
    if not labels:
        raise DiffError("no verdict snapshots (*[<checkpoint>-<category>].json)", directory)
    return labels


def load(path: Path) -> Labels:
    """Labels from a run report file or a snapshot directory."""
    if path.is_dir():
        return _from_snapshots(path)
    if path.is_file():
        return _from_report(path)
    raise DiffError("no such file or directory", path)


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


def run(a: Path, b: Path) -> tuple[str, int]:
    """The report text and the exit code: 1 when any prompt turned unsafe, else 0."""
    before, after = load(a), load(b)
    diffs = compare(before, after)
    text = render(diffs, set(before) - set(after), set(after) - set(before))
    return text, int(any(d.newly_unsafe or d.unsafe_after_error for d in diffs))
