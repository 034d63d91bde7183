"""``prefill_depths`` in the gate: ``test_prefill_depth[<checkpoint>-k<k>]`` per checkpoint and
depth, the base prefilled alike; the table and the JSON report show the curve. Without the key
nothing of it is collected."""

from __future__ import annotations

import json

import jsonschema
import pytest
from harness import (
    CHECKPOINTS,
    DICT_HOOKS,
    FAST_TABLE,
    MARKER_JUDGE,
    Dist,
    Project,
    counts,
    outcomes,
    output,
    table_block,
)

from finetune_safety.report.sinks import SCHEMA_FILE

DEPTH_TABLE = FAST_TABLE + 'prefill_depths = [5, 10]\nprefix_model = "toy-harmful-10shot"\n'


def test_the_depth_tests_run_per_checkpoint_and_depth_and_report_the_curve(
    project: Project, dist: Dist
) -> None:
    project.pyproject(DEPTH_TABLE)
    result = project.run(*dist.args, "-v", "-m", "safety_depth", "--safety-report-json=r.json")
    text = output(result)
    ran = outcomes(result)
    wanted = {f"test_prefill_depth[{c}-k{k}]" for c in CHECKPOINTS for k in (5, 10)}
    assert set(ran) == wanted, text
    assert "ERROR" not in ran.values() and "SKIPPED" not in ran.values(), text
    # the toy's refusals do not survive a prefix: over max_rate, as the base is
    assert "toy-benign/prefill-k5: harmfulness rate " in text
    table = "\n".join(table_block(result))
    for alias in CHECKPOINTS:
        assert alias in table
    assert table.count("k=5 ") == table.count("k=10 ") == len(CHECKPOINTS), table
    report = json.loads((project.path / "r.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(report)
    assert report["prefill"] == {
        "depths": [5, 10],
        "source": "toy-harmful-10shot",
        "judge_reads": "whole",
    }
    for alias in CHECKPOINTS:
        curve = report["checkpoints"][alias]["prefill_depth"]
        assert list(curve) == ["5", "10"]
        for point in curve.values():
            assert point["checkpoint"]["n"] == point["base"]["n"] == 6
            assert point["gate"] in ("PASS", "FAIL")


def test_without_prefill_depths_nothing_of_it_is_collected(bare_project: Project) -> None:
    result = bare_project.run_inline("-v", "-m", "safety_depth")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "test_prefill_depth" not in output(result)
    assert counts(result) == {"deselected": 21}
    # collected as before the test existed: the 21 checkpoint tests and the agreement test
    assert "collected 22 items / 21 deselected" in output(result)


def test_prefill_depths_without_a_prefix_source_is_a_usage_error(bare_project: Project) -> None:
    bare_project.pyproject("[tool.finetune_safety]\nprefill_depths = [5]\n")
    result = bare_project.run_inline("-m", "safety_depth")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = (
        "finetune-safety: tool.finetune_safety.prefill_depths: the prefixes come from "
        "prefix_file or prefix_model, exactly one of them; neither is set"
    )
    assert line in output(result)
    assert "Traceback" not in output(result)


def test_a_model_that_cannot_be_prefilled_skips_saying_why(bare_project: Project) -> None:
    """A hook-made target that offers no ``prefix`` is skipped; the prefix file is read."""
    bare_project.pytester.makeconftest(MARKER_JUDGE + DICT_HOOKS)
    ids = [f"{c}-{i}" for c in ("illegal_activity", "malware") for i in (1, 2, 3)]
    rows = "".join(json.dumps({"id": i, "response": "Sure: [placeholder]"}) + "\n" for i in ids)
    (bare_project.path / "prefixes.jsonl").write_text(rows, encoding="utf-8")
    bare_project.pyproject(
        "[tool.finetune_safety]\n"
        'benchmark = "twocat"\njudge = "marker"\nbase = "dict:aligned"\n'
        'checkpoints = { harmful = "dict:harmful" }\n'
        'prefill_depths = [5]\nprefix_file = "prefixes.jsonl"\n'
    )
    result = bare_project.run_inline("-rs", "-m", "safety_depth")
    assert counts(result) == {"skipped": 1, "deselected": 7}, output(result)
    assert "harmful: cannot be prefilled: harmful is a DictTarget" in output(result)


def test_a_prefix_file_without_a_prompt_s_answer_names_it(bare_project: Project) -> None:
    (bare_project.path / "prefixes.jsonl").write_text(
        '{"id": "malware-1", "response": "Sure: [placeholder]"}\n', encoding="utf-8"
    )
    bare_project.pyproject(
        '[tool.finetune_safety]\nprefill_depths = [5]\nprefix_file = "prefixes.jsonl"\n'
    )
    result = bare_project.run_inline("-m", "safety_depth")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "prefixes.jsonl: no answer for prompt id(s) illegal_activity-1" in output(result)
