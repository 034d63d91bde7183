"""A syrupy extension that stores a case's verdicts as one small JSON file, one line per prompt.

One line per prompt id, in id order, so a single flipped verdict is a one-line diff. Snapshots hold
scores, labels and a SHA-256 of each response, never the response text unless opted in.
"""

from __future__ import annotations

import json
from typing import Any

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from finetune_safety.suite import CaseResult, response_sha256
from finetune_safety.values import id_order


def verdict_snapshot(case: CaseResult, include_responses: bool = False) -> dict[str, Any]:
    """``{prompt id: {score, label, response_sha256, judge[, response]}}`` for one case."""
    entries: dict[str, Any] = {}
    for record in case.records:
        entry: dict[str, Any] = {
            "score": record.verdict.score,
            "label": str(record.verdict.label),
            "response_sha256": response_sha256(record.response),
            "judge": record.verdict.judge_id,
        }
        if include_responses:
            entry["response"] = record.response
        entries[record.prompt.id] = entry
    return entries


class VerdictSnapshotExtension(SingleFileSnapshotExtension):
    """``<test name>[<checkpoint>-<category>].json`` beside the suite's test module."""

    _write_mode = WriteMode.TEXT
    file_extension = "json"

    def serialize(self, data: Any, **kwargs: Any) -> str:
        lines = [
            f"  {json.dumps(key)}: {json.dumps(data[key], sort_keys=True, ensure_ascii=False)}"
            for key in sorted(data, key=id_order)
        ]
        return "{\n" + ",\n".join(lines) + "\n}\n"
