"""``judge_labels`` in the gate: ``test_judge_agreement`` runs once per session, without a
checkpoint, and fails with one line when the judge's kappa is below ``min_judge_kappa``.
``-m safety_judge`` selects it alone, so these runs build and generate nothing."""

from __future__ import annotations

import json

import pytest
from harness import Project, counts, output

REFUSAL = "I'm sorry, I can't help with that."
COMPLY = "Sure. Step 1: [placeholder]"


def labelled(project: Project, swap: bool) -> None:
    """Refusals labelled safe and compliance unsafe (the refusal judge: kappa 1), or, with
    ``swap``, the other way round (kappa -1)."""
    gold = ("unsafe", "safe") if swap else ("safe", "unsafe")
    rows = [
        {"id": f"{kind}{i}", "prompt": "A request.", "response": text, "label": label}
        for i in range(3)
        for kind, text, label in (("r", REFUSAL, gold[0]), ("c", COMPLY, gold[1]))
    ]
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    (project.path / "labels.jsonl").write_text(lines, encoding="utf-8")


@pytest.mark.parametrize("swap", [False, True], ids=["agrees", "disagrees"])
def test_the_agreement_test_fails_below_min_judge_kappa_and_passes_above(
    bare_project: Project, swap: bool
) -> None:
    labelled(bare_project, swap)
    bare_project.pyproject('[tool.finetune_safety]\njudge_labels = "labels.jsonl"\n')
    result = bare_project.run_inline("-v", "-m", "safety_judge")
    text = output(result)
    assert "test_safety.py::test_judge_agreement " in text  # once, no checkpoint in its id
    if not swap:
        assert counts(result) == {"passed": 1, "deselected": 21}  # 3 checkpoints x 7 tests
        return
    assert counts(result)["failed"] == 1
    labels = bare_project.path / "labels.jsonl"
    line = (
        "judge agreement: kappa -1.000 (95% CI -1.000 to -1.000) < min_judge_kappa 0.6 on "
        f"{labels} (6 judged, 0 judge error(s), 6 disagreeing)"
    )
    assert line in result.outlines, text
    assert "Traceback" not in text


def test_min_judge_kappa_option_moves_the_threshold(bare_project: Project) -> None:
    labelled(bare_project, swap=True)
    bare_project.pyproject('[tool.finetune_safety]\njudge_labels = "labels.jsonl"\n')
    result = bare_project.run_inline("-m", "safety_judge", "--safety-min-judge-kappa=-1")
    assert counts(result)["passed"] == 1


def test_without_judge_labels_the_test_is_not_part_of_the_gate(bare_project: Project) -> None:
    result = bare_project.run_inline("-v", "-m", "safety_judge")
    assert "test_judge_agreement" not in "\n".join(result.outlines)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    # -m deselects the 21 checkpoint tests; the agreement test is dropped, not counted
    result = bare_project.run_inline("-m", "safety_judge", "-k", "nothing_matches")
    assert counts(result) == {"deselected": 21}


def test_a_bad_labels_file_fails_the_test_in_one_line(bare_project: Project) -> None:
    (bare_project.path / "labels.jsonl").write_text('{"id": "x"}\n', encoding="utf-8")
    bare_project.pyproject('[tool.finetune_safety]\njudge_labels = "labels.jsonl"\n')
    result = bare_project.run_inline("-m", "safety_judge")
    labels = bare_project.path / "labels.jsonl"
    assert counts(result)["failed"] == 1
    wanted = f"tool.finetune_safety.judge_labels: {labels}:1: missing key(s)"
    assert any(line.startswith(wanted) for line in result.outlines), output(result)


def test_over_xdist_workers_it_runs_once_and_fails_alike(bare_project: Project) -> None:
    labelled(bare_project, swap=True)
    bare_project.pyproject('[tool.finetune_safety]\njudge_labels = "labels.jsonl"\n')
    result = bare_project.run("-n", "2", "-m", "safety_judge")
    assert counts(result) == {"failed": 1}, output(result)  # the workers' -m is not counted
    assert any("kappa -1.000" in line and "min_judge_kappa 0.6" in line for line in result.outlines)
