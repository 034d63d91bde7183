"""The judge-against-labels statistics, against figures computed by hand."""

from __future__ import annotations

import pytest

from finetune_safety.evaluation.agreement import Agreement
from finetune_safety.values import Label

U, S, E = Label.UNSAFE, Label.SAFE, Label.ERROR


def test_a_two_by_two_table_gives_the_hand_computed_figures() -> None:
    # judge x label: TP 40, FP 10, FN 10, TN 40 (n 100).
    # precision = recall = 40/50 = 0.8; F1 = 80/100 = 0.8; accuracy po = 80/100 = 0.8.
    # Margins: judge unsafe 50/100, label unsafe 50/100, so pe = .5*.5 + .5*.5 = 0.5 and
    # kappa = (0.8 - 0.5) / (1 - 0.5) = 0.6.
    # SE = sqrt(po (1 - po) / (n (1 - pe)^2)) = sqrt(0.16 / 25) = 0.08;
    # 95% interval = 0.6 -+ 1.96 * 0.08 = 0.4432 .. 0.7568.
    pairs = [(U, U)] * 40 + [(S, U)] * 10 + [(U, S)] * 10 + [(S, S)] * 40
    a = Agreement.of(pairs)
    assert (a.tp, a.fp, a.fn, a.tn, a.errors, a.n) == (40, 10, 10, 40, 0, 100)
    assert a.precision == pytest.approx(0.8)
    assert a.recall == pytest.approx(0.8)
    assert a.f1 == pytest.approx(0.8)
    assert a.accuracy == pytest.approx(0.8)
    assert a.kappa == pytest.approx(0.6)
    assert a.kappa_interval == pytest.approx((0.4432, 0.7568), abs=1e-4)


def test_an_unbalanced_table() -> None:
    # TP 20, FP 5, FN 10, TN 65 (n 100): precision 20/25 = 0.8, recall 20/30 = 2/3,
    # F1 = 40/55 = 0.7273, po = 0.85; judge unsafe 0.25, label unsafe 0.30,
    # pe = .25*.30 + .75*.70 = 0.6, kappa = (0.85 - 0.6) / 0.4 = 0.625;
    # SE = sqrt(.85 * .15 / (100 * .16)) = sqrt(0.0079688) = 0.089268; 1.96 SE = 0.17496.
    pairs = [(U, U)] * 20 + [(S, U)] * 5 + [(U, S)] * 10 + [(S, S)] * 65
    a = Agreement.of(pairs)
    assert (a.precision, a.recall) == (pytest.approx(0.8), pytest.approx(2 / 3))
    assert a.f1 == pytest.approx(40 / 55)
    assert a.kappa == pytest.approx(0.625)
    assert a.kappa_interval == pytest.approx((0.45004, 0.79996), abs=1e-4)


def test_judge_errors_are_counted_apart_and_left_out_of_every_figure() -> None:
    a = Agreement.of([(U, U), (S, S), (U, E), (S, E)])
    assert (a.n, a.errors) == (2, 2)
    assert a.accuracy == 1.0 and a.kappa == 1.0
    assert a.kappa_interval == (1.0, 1.0)


def test_kappa_is_undefined_when_everything_falls_in_one_class() -> None:
    a = Agreement.of([(S, S), (S, S)])
    assert a.kappa is None and a.kappa_interval is None
    assert a.precision is None and a.recall is None and a.accuracy == 1.0
    assert Agreement().kappa is None and Agreement().accuracy is None


def test_the_interval_is_clipped_to_one() -> None:
    # TP 4, FP 0, FN 1, TN 5 (n 10): po 0.9, judge unsafe 0.4, label unsafe 0.5, pe 0.5,
    # kappa 0.8; SE = sqrt(0.09 / (10 * 0.25)) = 0.18974, so 0.8 + 1.96 SE = 1.172 -> 1.
    a = Agreement.of([(U, U)] * 4 + [(U, S)] + [(S, S)] * 5)
    assert a.kappa == pytest.approx(0.8)
    assert a.kappa_interval == pytest.approx((0.42811, 1.0), abs=1e-4)
