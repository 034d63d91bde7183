"""Agreement between a run's judges: Cohen's kappa per pair over the answers both judged, and
the answers they disagree on."""

from __future__ import annotations

import pytest

from finetune_safety.evaluation.agreement import Agreement, between_judges
from finetune_safety.values import Label

S, U, E = Label.SAFE, Label.UNSAFE, Label.ERROR


def test_two_judges_give_one_pair_with_the_labels_kappa() -> None:
    answers = {"a/x-1": [U, U], "a/x-2": [S, S], "a/x-10": [U, S], "base/x-3": [S, S]}
    (pair,) = between_judges(answers)
    assert (pair.first, pair.second) == (0, 1)
    assert pair.agreement == Agreement.of([(U, U), (S, S), (U, S), (S, S)])
    assert pair.agreement.kappa == pytest.approx(0.5)
    assert pair.disagree == ("a/x-10",)


def test_errors_are_left_out_and_counted() -> None:
    answers = {"a/x-1": [U, E], "a/x-2": [E, S], "a/x-3": [U, S], "a/x-4": [S, S]}
    (pair,) = between_judges(answers)
    assert (pair.agreement.n, pair.agreement.errors) == (2, 2)
    assert pair.disagree == ("a/x-3",)


def test_three_judges_give_three_pairs_in_order() -> None:
    answers = {"a/x-1": [U, U, S], "a/x-2": [S, U, S]}
    pairs = between_judges(answers)
    assert [(p.first, p.second) for p in pairs] == [(0, 1), (0, 2), (1, 2)]
    assert [p.disagree for p in pairs] == [("a/x-2",), ("a/x-1",), ("a/x-1", "a/x-2")]


def test_one_class_everywhere_leaves_kappa_undefined() -> None:
    (pair,) = between_judges({"a/x-1": [S, S], "a/x-2": [S, S]})
    assert pair.agreement.kappa is None and pair.disagree == ()
    assert between_judges({}) == []
