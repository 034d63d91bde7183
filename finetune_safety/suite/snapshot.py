"""Verdict snapshots: one small JSON file per checkpoint and category, one line per prompt.

A snapshot holds verdicts only (score and label per prompt, the judge id once per file), so a
response that changes with the same verdict is not a safety change and passes; response hashes
live in the JSON report. A flipped verdict fails with one line naming the prompt; a case never
recorded is skipped with the command that records it (or fails, when snapshots are strict).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from syrupy.extensions.base import AbstractSyrupyExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from finetune_safety.evaluation.case import CaseResult
from finetune_safety.values import id_order

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion
    from syrupy.location import PyTestLocation
    from syrupy.types import SnapshotIndex

#: Characters a parametrization id keeps in a file name; any other makes the name hashed.
_PLAIN = re.compile(r"[A-Za-z0-9._+=@,-]*")
_TEST_ID = re.compile(r"(?P<test>[^\[]+)\[(?P<id>.*)\]")
#: Longest id kept whole; longer ones are cut and hashed (file names stay well under 255).
MAX_ID = 80
SHOWN = 5


def verdict_snapshot(case: CaseResult, include_responses: bool = False) -> dict[str, Any]:
    """``{checkpoint, category, judge, verdicts: {prompt id: {score, label[, response]}}}``."""
    verdicts: dict[str, Any] = {}
    for record in case.records:
        entry: dict[str, Any] = {"score": record.verdict.score, "label": str(record.verdict.label)}
        if include_responses:
            entry["response"] = record.response
        verdicts[record.prompt.id] = entry
    judges = sorted({r.verdict.judge_id for r in case.records})
    return {
        "checkpoint": case.alias,
        "category": case.category,
        "judge": judges[0] if len(judges) == 1 else judges,
        "verdicts": verdicts,
    }


def file_stem(name: str) -> str:
    """``test[<id>]`` as a file name, one-to-one: an id that is long or holds characters a
    file name cannot is cleaned, cut and suffixed ``~<hash of the whole name>`` (``~`` never
    appears in a name kept as is, so a hashed name cannot equal a plain one)."""
    match = _TEST_ID.fullmatch(name)
    test, test_id = (match.group("test"), match.group("id")) if match else (name, "")
    if match and _PLAIN.fullmatch(test_id) and len(test_id) <= MAX_ID:
        return name
    clean = re.sub(r"[^A-Za-z0-9._+=@,-]", "_", test_id)[:MAX_ID]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return f"{test}[{clean}~{digest}]"


class VerdictSnapshotExtension(SingleFileSnapshotExtension):
    """``__snapshots__/<module>/<test name>[<checkpoint>-<category>].json``."""

    _write_mode = WriteMode.TEXT
    file_extension = "json"

    @classmethod
    def get_snapshot_name(cls, *, test_location: PyTestLocation, index: SnapshotIndex = 0) -> str:
        name = AbstractSyrupyExtension.get_snapshot_name(test_location=test_location, index=index)
        return file_stem(name)

    @classmethod
    def matches_test_location(
        cls, *, test_location: PyTestLocation, snapshot_location: str
    ) -> bool:
        location = Path(snapshot_location)
        return (
            location.parent.name == test_location.basename
            and location.stem == cls.get_snapshot_name(test_location=test_location)
        )

    def serialize(self, data: Any, **kwargs: Any) -> str:
        """The header keys on their own lines, then one line per prompt in natural id order."""
        verdicts = data["verdicts"]
        head = [f"  {json.dumps(k)}: {json.dumps(data[k])}" for k in data if k != "verdicts"]
        entry = {
            pid: json.dumps(v, sort_keys=True, ensure_ascii=False) for pid, v in verdicts.items()
        }
        lines = [f"    {json.dumps(pid)}: {entry[pid]}" for pid in sorted(verdicts, key=id_order)]
        body = '  "verdicts": {\n' + ",\n".join(lines) + "\n  }"
        return "{\n" + ",\n".join([*head, body]) + "\n}\n"


def stored_verdicts(data: dict[str, Any]) -> dict[str, Any]:
    """The per-prompt entries of a snapshot, also of the layout before judge-once-per-file."""
    verdicts = data.get("verdicts", data)
    return verdicts if isinstance(verdicts, dict) else {}


def _verdict(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "absent"
    return f"{entry.get('label')} ({entry.get('score')})"


def mismatch(case: str, stored_text: str, data: dict[str, Any]) -> str:
    """One line: which prompts' verdicts (or the judge) differ from the recorded snapshot."""
    try:
        stored = json.loads(stored_text)
    except ValueError:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    old, new = stored_verdicts(stored), data["verdicts"]
    changes = []
    if stored.get("judge") != data["judge"]:
        changes.append(f"judge {stored.get('judge')} -> {data['judge']}")
    for pid in sorted(old.keys() | new.keys(), key=id_order):
        before, after = old.get(pid), new.get(pid)
        if _verdict(before) != _verdict(after):
            changes.append(f"{pid} {_verdict(before)} -> {_verdict(after)}")
        elif before != after:
            changes.append(f"{pid} response text changed")
    more = f"; and {len(changes) - SHOWN} more" if len(changes) > SHOWN else ""
    return (
        f"{case}: {len(changes)} change(s) from the recorded snapshot: "
        f"{'; '.join(changes[:SHOWN])}{more}; if intended, record them with --snapshot-update"
    )


def check_snapshot(
    snapshot: SnapshotAssertion, data: dict[str, Any], nodeid: str, strict: bool
) -> None:
    """Compare with the recorded snapshot (syrupy keeps the tally and ``--snapshot-update``).

    A case never recorded is skipped, naming the command that records it, unless ``strict``.
    """
    case = f"{data['checkpoint']}/{data['category']}"
    location = Path(
        snapshot.extension.get_location(test_location=snapshot.test_location, index=snapshot.index)
    )
    if not snapshot.update_snapshots and not location.is_file():
        record = f"record it with: pytest '{nodeid}' --snapshot-update"
        if strict:
            pytest.fail(f"{case}: no recorded verdict snapshot (strict); {record}", pytrace=False)
        pytest.skip(f"{case}: no recorded verdict snapshot yet; {record}")
    if snapshot != data:
        pytest.fail(mismatch(case, location.read_text(encoding="utf-8"), data), pytrace=False)
