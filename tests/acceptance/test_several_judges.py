"""Two judges in the gate (issue 20): each judges every answer, ``judge_combine`` decides, and
the table's footer, the JSON report and the snapshots say how far the judges agree. The
judges are marker doubles from a conftest hook: ``marker`` flags ``UNSAFE``, ``marker:
placeholder`` flags ``placeholder``, so they disagree exactly on the checkpoint's
illegal-activity answers ("a placeholder"); on malware ("UNSAFE placeholder") both flag it."""

from __future__ import annotations

import json

import pytest
from harness import Dist, Project, outcomes, output, table_block

CONFTEST = """
from finetune_safety.testing.doubles import DictTarget, MarkerJudge
from finetune_safety.values import Prompt

ANSWERS = {
    "dict:aligned": {},
    "dict:split": {"malware": "UNSAFE placeholder", "illegal_activity": "a placeholder"},
}


def pytest_safety_make_judge(spec):
    if spec.partition(":")[0] == "marker":
        return MarkerJudge(spec.partition(":")[2] or "UNSAFE")


def pytest_safety_make_target(spec, settings):
    if spec.model in ANSWERS:
        return DictTarget(settings.name, ANSWERS[spec.model], template=settings.template)


def pytest_safety_load_benchmark(spec):
    if spec == "twocat":
        return [
            Prompt(f"{c}-{i}", c, f"A request about {c}, number {i}.")
            for c in ("illegal_activity", "malware")
            for i in (1, 2, 3)
        ]
"""
TABLE = """[tool.finetune_safety]
base = "dict:aligned"
benchmark = "twocat"
judge = ["marker", "marker:placeholder"]

[tool.finetune_safety.checkpoints]
split = "dict:split"
"""
FOOTER = [
    "judges, combined {how}: marker, marker:placeholder",
    "agreement marker ~ marker:placeholder: kappa 0.50 [0.01, 0.99] over 12 answers; 3 disagree:",
    "split/illegal_activity-1, split/illegal_activity-2, split/illegal_activity-3",
]
RATE = "test_harmfulness_rate[split-illegal_activity]"


@pytest.fixture
def two_judges(bare_project: Project) -> Project:
    bare_project.pytester.makeconftest(CONFTEST)
    bare_project.pyproject(TABLE)
    bare_project.options = ("--safety-benchmark=twocat", "-v", "--snapshot-update")
    return bare_project


def test_any_and_all_gate_differently_and_the_table_gives_the_agreement(
    two_judges: Project, dist: Dist
) -> None:
    anyone = two_judges.run("--safety-report-json=any.json", *dist.args)
    everyone = two_judges.run("--safety-judge-combine=all", *dist.args)
    text = output(anyone)
    assert anyone.ret == everyone.ret == 1, text
    assert "judges marker, marker:placeholder (any); cache" in text
    assert "judges marker, marker:placeholder (all); cache" in output(everyone)

    # One judge flags the illegal-activity answers: unsafe for any, safe for all.
    any_outcomes, all_outcomes = outcomes(anyone), outcomes(everyone)
    assert (any_outcomes[RATE], all_outcomes[RATE]) == ("FAILED", "PASSED")
    malware = "test_harmfulness_rate[split-malware]"
    assert any_outcomes[malware] == all_outcomes[malware] == "FAILED"
    changed = sorted(t for t in any_outcomes if any_outcomes[t] != all_outcomes[t])
    assert changed == [RATE, "test_no_regression_vs_base[split-illegal_activity]"]

    for result, how in ((anyone, "any"), (everyone, "all")):
        footer = table_block(result)[-len(FOOTER) :]
        assert footer == [FOOTER[0].format(how=how), *FOOTER[1:]], output(result)

    report = json.loads((two_judges.path / "any.json").read_text(encoding="utf-8"))
    assert (report["judges"], report["judge_combine"]) == (
        ["marker", "marker:placeholder"],
        "any",
    )
    (pair,) = report["judge_agreement"]
    assert (pair["n"], pair["disagree_count"], pair["kappa"]) == (12, 3, pytest.approx(0.5))
    snapshots = two_judges.snapshot_files()
    recorded = json.loads(snapshots["test_verdicts_match_snapshot[split-malware].json"].read_text())
    assert recorded["judge"] == "all(marker/v1:UNSAFE, marker/v1:placeholder)"
    assert (recorded["judges"], recorded["combine"]) == (
        ["marker/v1:UNSAFE", "marker/v1:placeholder"],
        "all",
    )
