"""Several judges as one: ``any``/``all`` over their unsafe calls, errors fail closed, the
score follows the label, and each member's verdicts are stored under its own id."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from finetune_safety.catalog import configured_judge
from finetune_safety.config import SafetyConfig
from finetune_safety.errors import JudgeError
from finetune_safety.evaluation.pipeline import Evaluator
from finetune_safety.evaluation.store import Store
from finetune_safety.judges import CombinedJudge, RefusalJudge, combine
from finetune_safety.models import Decoding
from finetune_safety.testing.doubles import DictTarget, MarkerJudge
from finetune_safety.values import Label, Prompt, Verdict

SAFE = Verdict(1, Label.SAFE, "refused", "a")
UNSAFE = Verdict(5, Label.UNSAFE, "complied", "b")
ERROR = Verdict(None, Label.ERROR, "no score", "c", raw="gibberish")


@pytest.mark.parametrize(
    ("how", "verdicts", "label", "score"),
    [
        ("any", [SAFE, UNSAFE], Label.UNSAFE, 5),
        ("all", [SAFE, UNSAFE], Label.SAFE, 1),
        ("any", [SAFE, SAFE], Label.SAFE, 1),
        ("all", [UNSAFE, UNSAFE], Label.UNSAFE, 5),
    ],
)
def test_any_and_all_over_the_unsafe_calls(
    how: str, verdicts: list[Verdict], label: Label, score: int
) -> None:
    combined = combine(verdicts, how, "both")
    assert (combined.label, combined.score, combined.judge_id) == (label, score, "both")
    assert combined.parts == tuple(verdicts)


def test_the_score_is_the_highest_under_any_and_the_lowest_under_all() -> None:
    rubric = Verdict(3, Label.SAFE, "partly", "rubric")
    assert combine([rubric, SAFE], "any", "x").score == 3
    assert combine([rubric, UNSAFE], "all", "x").score == 3


@pytest.mark.parametrize("how", ["any", "all"])
def test_an_error_from_any_judge_is_an_error(how: str) -> None:
    combined = combine([UNSAFE, ERROR], how, "both")
    assert (combined.label, combined.score) == (Label.ERROR, None)
    assert combined.rationale == "c: no score"
    assert combined.raw == "gibberish"


def test_the_combined_id_names_the_rule_and_each_judge() -> None:
    judge = CombinedJudge((RefusalJudge(), MarkerJudge("X")), "all")
    assert judge.judge_id == f"all({RefusalJudge().judge_id}, marker/v1:X)"


@pytest.mark.parametrize(
    ("members", "how"), [((RefusalJudge(),), "any"), ((RefusalJudge(), MarkerJudge()), "most")]
)
def test_one_judge_or_an_unknown_rule_is_refused(members: tuple[RefusalJudge], how: str) -> None:
    with pytest.raises(JudgeError, match="two or more and one of"):
        CombinedJudge(members, how)


class CountingJudge(MarkerJudge):
    def __init__(self, marker: str) -> None:
        super().__init__(marker)
        self.asked = 0

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        self.asked += len(items)
        return super().judge(items)


PROMPTS = [Prompt(f"malware-{i}", "malware", f"ask {i}") for i in (1, 2, 3)]
TARGET = DictTarget("t", {"ask 1": "A B", "ask 2": "A", "ask 3": "none"})


def test_adding_a_second_judge_rejudges_nothing_with_the_first(tmp_path: Path) -> None:
    first, second = CountingJudge("A"), CountingJudge("B")
    with Store.in_dir(tmp_path) as store:
        alone = Evaluator(store, first, Decoding(), tmp_path, progress=False).run(TARGET, PROMPTS)
        both = CombinedJudge((first, second), "any")
        run = Evaluator(store, both, Decoding(), tmp_path, progress=False).run(TARGET, PROMPTS)
        again = Evaluator(store, both, Decoding(), tmp_path, progress=False).run(TARGET, PROMPTS)
    assert (alone.judged, run.judged, again.judged) == (3, 3, 0)
    assert (first.asked, second.asked) == (3, 3)
    assert [r.verdict.label for r in run.records] == [Label.UNSAFE, Label.UNSAFE, Label.SAFE]
    assert [[p.label for p in r.verdict.parts] for r in again.records][1] == [
        Label.UNSAFE,
        Label.SAFE,
    ]
    assert [r.verdict for r in again.records] == [r.verdict for r in run.records]


def test_the_configuration_builds_one_judge_or_the_combination(tmp_path: Path) -> None:
    one = configured_judge(SafetyConfig(), tmp_path)
    assert isinstance(one, RefusalJudge)
    config = SafetyConfig(judge=("refusal", "refusal-paper"), judge_combine="all")
    several = configured_judge(config, tmp_path)
    assert isinstance(several, CombinedJudge)
    assert (len(several.members), several.how) == (2, "all")
