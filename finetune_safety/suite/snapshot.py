"""Verdict snapshots: one small JSON file per checkpoint and category, one line per prompt.

A snapshot holds verdicts only (score and label per prompt, the judge id once per file; with
several judges the combined verdict, and the judges and how they combine once per file), so a
response that changes with the same verdict is not a safety change and passes; response hashes
live in the JSON report. Snapshots compare as JSON, so formatting never fails a test. A flipped
verdict fails with one line naming the prompt; a file that cannot be read fails with one line
naming it and what is wrong; a case never recorded is skipped with the command that records it
(or fails, when snapshots are strict).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from syrupy.extensions.base import AbstractSyrupyExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from finetune_safety.errors import LocatedError
from finetune_safety.evaluation.case import CaseResult
from finetune_safety.judges import COMBINES
from finetune_safety.values import Label, id_order

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion
    from syrupy.location import PyTestLocation
    from syrupy.types import SerializableData, SnapshotIndex

#: Characters a parametrization id keeps in a file name; any other makes the name hashed.
_PLAIN = re.compile(r"[A-Za-z0-9._+=@,-]*")
_TEST_ID = re.compile(r"(?P<test>[^\[]+)\[(?P<id>.*)\]")
#: Longest id kept whole; longer ones are cut and hashed (file names stay well under 255).
MAX_ID = 80
SHOWN = 5
#: The keys of a snapshot, and of one prompt's entry in it.
HEADER = ("checkpoint", "category", "judge")
#: Header keys a snapshot has only when several judges gave its verdicts.
JUDGES_HEADER = ("judges", "combine")
ENTRY = {"score", "label", "response"}
LABELS = {str(label) for label in Label}


class SnapshotFileError(LocatedError):
    """A recorded verdict snapshot cannot be read: its bytes, its JSON or its shape."""


def verdict_snapshot(
    case: CaseResult, include_responses: bool = False, combine: str = "any"
) -> dict[str, Any]:
    """``{checkpoint, category, judge, verdicts: {prompt id: {score, label[, response]}}}``;
    verdicts that several judges combined add their ids (``judges``) and ``combine``."""
    verdicts: dict[str, Any] = {}
    for record in case.records:
        entry: dict[str, Any] = {"score": record.verdict.score, "label": str(record.verdict.label)}
        if include_responses:
            entry["response"] = record.response
        verdicts[record.prompt.id] = entry
    judges = sorted({r.verdict.judge_id for r in case.records})
    parts = next((r.verdict.parts for r in case.records if r.verdict.parts), ())
    several = {"judges": [v.judge_id for v in parts], "combine": combine} if parts else {}
    return {
        "checkpoint": case.alias,
        "category": case.category,
        "judge": judges[0] if len(judges) == 1 else judges,
        **several,
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

    def read_snapshot_data_from_location(
        self, *, snapshot_location: str, snapshot_name: str, session_id: str
    ) -> SerializableData | None:
        """The file's text; bytes that are not UTF-8 read as replacement characters, so such a
        file differs from every run (``check_snapshot`` names the fault) and
        ``--snapshot-update`` rewrites it instead of stopping on a decoding error."""
        try:
            return Path(snapshot_location).read_bytes().decode("utf-8-sig", errors="replace")
        except FileNotFoundError:
            return None

    def matches(
        self, *, serialized_data: SerializableData, snapshot_data: SerializableData
    ) -> bool:
        """Equal as JSON: indentation, line ends and key order are formatting, not verdicts."""
        try:
            return bool(json.loads(str(serialized_data)) == json.loads(str(snapshot_data)))
        except ValueError:
            return False


def _shape_fault(data: Any) -> str | None:
    """What makes ``data`` not a verdict snapshot, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    unknown = sorted(set(data) - {*HEADER, *JUDGES_HEADER, "verdicts"})
    if unknown:
        return f"unknown key {unknown[0]!r}"
    judges = data.get("judges", [])
    if not (isinstance(judges, list) and all(isinstance(j, str) for j in judges)):
        return "'judges' is not a list of judge ids"
    if data.get("combine", "any") not in COMBINES:
        return f"'combine' is not one of {COMBINES}"
    for key in ("checkpoint", "category"):
        if not isinstance(data.get(key), str):
            return f"{key!r} is not a string"
    judge = data.get("judge")
    if not (
        isinstance(judge, str)
        or (isinstance(judge, list) and all(isinstance(j, str) for j in judge))
    ):
        return "'judge' is not a judge id (or a list of them)"
    verdicts = data.get("verdicts")
    if not isinstance(verdicts, dict):
        return "'verdicts' is not an object of prompt id -> verdict"
    for pid, entry in verdicts.items():
        if (
            not isinstance(entry, dict)
            or not set(entry) >= {"score", "label"}
            or set(entry) - ENTRY
        ):
            return f"verdict {pid!r} is not {{score, label[, response]}}"
        score, label = entry["score"], entry["label"]
        if label not in LABELS:
            return f"verdict {pid!r} has label {label!r} (expected safe, unsafe or error)"
        if not (score is None or (type(score) is int and 1 <= score <= 5)):
            return f"verdict {pid!r} has score {score!r} (expected 1 to 5, or null)"
        if "response" in entry and not isinstance(entry["response"], str):
            return f"verdict {pid!r} has a response that is not a string"
    return None


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory where it lies below it (as pytest shows)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return os.fspath(path)


def read_recorded(path: Path) -> dict[str, Any]:
    """The snapshot recorded at ``path``, checked; SnapshotFileError names what is wrong."""
    shown = shown_path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SnapshotFileError(
            f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})", shown
        ) from None
    except OSError as exc:
        raise SnapshotFileError(f"cannot be read ({exc.strerror})", shown) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotFileError(f"not valid JSON ({exc.msg})", shown, exc.lineno) from None
    fault = _shape_fault(data)
    if fault is not None:
        raise SnapshotFileError(f"not a verdict snapshot: {fault}", shown)
    return dict(data)


def _verdict(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "absent"
    return f"{entry.get('label')} ({entry.get('score')})"


def mismatch(
    case: str, stored: dict[str, Any], data: dict[str, Any], limit: int | None = None
) -> str:
    """One line: which header values and prompts' verdicts differ from the recorded snapshot."""
    old, new = stored.get("verdicts", {}), data["verdicts"]
    changes = [
        f"{key} {stored.get(key)} -> {data.get(key)}"
        for key in (*HEADER, *JUDGES_HEADER)
        if stored.get(key) != data.get(key)
    ]
    for pid in sorted(old.keys() | new.keys(), key=id_order):
        before, after = old.get(pid), new.get(pid)
        if _verdict(before) != _verdict(after):
            changes.append(f"{pid} {_verdict(before)} -> {_verdict(after)}")
        elif before != after:
            changes.append(f"{pid} response text changed")
    more = f"; and {len(changes) - SHOWN} more" if len(changes) > SHOWN else ""
    partial = (
        f" (partial run, --safety-limit {limit}: compared on the prompts that ran)"
        if limit is not None
        else ""
    )
    return (
        f"{case}: {len(changes)} change(s) from the recorded snapshot{partial}: "
        f"{'; '.join(changes[:SHOWN])}{more}; if intended, record them with --snapshot-update"
    )


def with_unasked(stored: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` plus the recorded verdicts of the prompts this run did not ask (those beyond
    ``--safety-limit``): compared unchanged, and kept when the snapshot is re-recorded."""
    verdicts = {pid: v for pid, v in stored["verdicts"].items() if pid not in data["verdicts"]}
    return {**data, "verdicts": {**verdicts, **data["verdicts"]}}


def check_snapshot(
    snapshot: SnapshotAssertion,
    data: dict[str, Any],
    nodeid: str,
    strict: bool,
    limit: int | None = None,
) -> None:
    """Compare with the recorded snapshot (syrupy keeps the tally and ``--snapshot-update``).

    A case never recorded is skipped, naming the command that records it, unless ``strict``.
    Under ``--safety-limit`` (``limit``) only the prompts that ran are compared; the others'
    recorded verdicts stay as they are, also with ``--snapshot-update``.
    """
    case = f"{data['checkpoint']}/{data['category']}"
    record = f"pytest '{nodeid}' --snapshot-update"
    location = Path(
        snapshot.extension.get_location(test_location=snapshot.test_location, index=snapshot.index)
    )
    stored: dict[str, Any] = {}
    if location.is_file():
        fault: str | None = None
        try:
            stored = read_recorded(location)
        except SnapshotFileError as exc:
            fault = str(exc)  # --snapshot-update rewrites the file
        if fault is not None and not snapshot.update_snapshots:
            pytest.fail(f"{case}: snapshot {fault}; re-record it with: {record}", pytrace=False)
    elif not snapshot.update_snapshots:
        if strict:
            pytest.fail(
                f"{case}: no recorded verdict snapshot (strict); record it with: {record}",
                pytrace=False,
            )
        pytest.skip(f"{case}: no recorded verdict snapshot yet; record it with: {record}")
    if limit is not None and stored:
        if snapshot.update_snapshots and stored["judge"] != data["judge"]:
            pytest.fail(
                f"{case}: the judge changed ({stored['judge']} -> {data['judge']}); a run with "
                f"--safety-limit {limit} cannot re-record the prompts it did not ask: re-record "
                "the snapshot in a run without --safety-limit",
                pytrace=False,
            )
        data = with_unasked(stored, data)
    if snapshot != data:
        pytest.fail(mismatch(case, stored, data, limit), pytrace=False)
