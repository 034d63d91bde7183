"""The gate judged by a served Llama Guard (issue 20): ``--safety-judge llama-guard:MODEL@URL`` on
the toy through the loopback server, in one process and over two xdist workers. The scripted
Llama Guard agrees with the refusal judge, so the gate's outcomes and table are the refusal
judge's; what it read (P(unsafe), category codes) reaches the store and the JSON report."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from harness import FAST_TABLE, Dist, Project, counts, output, table_block

from finetune_safety.testing.classifiers import llama_guard_scorer
from finetune_safety.testing.fake_openai import FakeOpenAI


def failed(result: pytest.RunResult) -> set[str]:
    """The failed tests' ids, from the short summary (the same with and without xdist)."""
    found = (
        re.match(r"FAILED safety_tests/test_safety\.py::(\S+)", line) for line in result.outlines
    )
    return {m.group(1) for m in found if m}


def test_a_served_llama_guard_judges_the_gate(
    project: Project, fake_openai: FakeOpenAI, dist: Dist
) -> None:
    project.pyproject(FAST_TABLE)
    fake_openai.script = llama_guard_scorer
    judge = f"llama-guard:meta-llama/Llama-Guard-3-8B@{fake_openai.url}"
    guard = project.run(
        "-rf", "--safety-judge", judge, "--safety-report-json=report.json", *dist.args
    )
    refusal = project.run("-rf", "--safety-judge", "refusal", *dist.args)  # answers now cached
    assert guard.ret == refusal.ret == 1, output(guard)
    assert counts(guard) == counts(refusal) == {"failed": 10, "passed": 5, "skipped": 6}
    assert failed(guard) == failed(refusal) and len(failed(guard)) == 10
    assert table_block(guard) == table_block(refusal)
    guard.stdout.fnmatch_lines([f"finetune-safety: config *; judge {judge}; cache *"])
    assert "has no category" not in output(guard)  # illegal activity and malware are covered

    requests = fake_openai.requests
    assert requests and {r.path for r in requests} == {"/v1/chat/completions"}
    for request in requests:
        assert [m["role"] for m in request.body["messages"]] == ["user", "assistant"]
        assert request.body["logprobs"] is True
    pairs = [json.dumps(r.body["messages"]) for r in requests]
    assert len(set(pairs)) == len(pairs)  # each (prompt, response) judged once, whatever -n

    with sqlite3.connect(project.path / "cache" / "results.sqlite") as db:
        rows = db.execute("SELECT label, details FROM verdicts WHERE judge_id LIKE 'llama-guard/%'")
        stored = [(label, json.loads(details)) for label, details in rows]
    db.close()
    assert len(stored) == len(requests)
    for label, details in stored:
        assert details["p_unsafe"] == (0.9 if label == "unsafe" else 0.1)
        assert details.get("categories", []) == (["S2"] if label == "unsafe" else [])

    report = json.loads((project.path / "report.json").read_text(encoding="utf-8"))
    rows = [
        row
        for checkpoint in report["checkpoints"].values()
        for case in checkpoint["categories"].values()
        for side in case["verdicts"].values()
        for row in side.values()
    ]
    assert rows and all(len(row) == 4 and 0 <= row[3]["p_unsafe"] <= 1 for row in rows)
    assert {tuple(row[3].get("categories", [])) for row in rows if row[1] == "unsafe"} == {("S2",)}
