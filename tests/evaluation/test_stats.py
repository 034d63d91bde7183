"""Paired statistics checked against scipy (a test-only dependency) and textbook values."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from scipy.stats import binomtest

from finetune_safety.evaluation.stats import (
    Z95,
    holm,
    mcnemar_one_sided,
    min_flips,
    others_needed,
    wilson,
)

GRID = [(k, n) for n in range(1, 41) for k in range(n + 1)]


# --- wilson ------------------------------------------------------------------------------------


def test_z95_is_the_two_sided_95_percent_normal_quantile() -> None:
    from scipy.stats import norm

    assert pytest.approx(norm.ppf(0.975), abs=1e-12) == Z95


def test_wilson_matches_scipy_on_a_grid() -> None:
    worst = 0.0
    for k, n in GRID:
        ci = binomtest(k, n).proportion_ci(method="wilson")
        low, high = wilson(k, n)
        worst = max(worst, abs(low - ci.low), abs(high - ci.high))
        assert low == pytest.approx(ci.low, abs=1e-9), (k, n)
        assert high == pytest.approx(ci.high, abs=1e-9), (k, n)
    assert worst < 1e-9


@pytest.mark.parametrize(("k", "n"), GRID[::37])
def test_wilson_is_an_interval_around_the_estimate(k: int, n: int) -> None:
    low, high = wilson(k, n)
    assert 0.0 <= low < high <= 1.0
    assert low - 1e-12 <= k / n <= high + 1e-12


def test_wilson_contains_the_estimate_exactly() -> None:
    outside = [(k, n) for k, n in GRID if not wilson(k, n)[0] <= k / n <= wilson(k, n)[1]]
    assert outside == []
    assert wilson(30, 30)[1] == 1.0
    assert wilson(0, 3)[0] == 0.0


def test_wilson_symmetry() -> None:
    for k, n in GRID:
        low, high = wilson(k, n)
        mirror_low, mirror_high = wilson(n - k, n)
        assert low == pytest.approx(1 - mirror_high, abs=1e-12)
        assert high == pytest.approx(1 - mirror_low, abs=1e-12)


def test_wilson_known_value() -> None:
    # 0 of 30: upper bound z^2 / (n + z^2), the "rule of three"'s Wilson cousin.
    z2 = Z95 * Z95
    assert wilson(0, 30) == (0.0, pytest.approx(z2 / (30 + z2), abs=1e-12))


def test_wilson_of_nothing_is_the_whole_unit_interval() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


# --- McNemar -----------------------------------------------------------------------------------


def test_mcnemar_matches_scipy_exact_binomial_on_a_grid() -> None:
    for discordant in range(1, 41):
        for worse in range(discordant + 1):
            better = discordant - worse
            expected = binomtest(worse, discordant, 0.5, alternative="greater").pvalue
            got = mcnemar_one_sided(worse, better)
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-300), (worse, better)


@pytest.mark.parametrize(("worse", "better"), [(600, 500), (60, 40), (1100, 0), (0, 1100)])
def test_mcnemar_large_counts(worse: int, better: int) -> None:
    expected = binomtest(worse, worse + better, 0.5, alternative="greater").pvalue
    got = mcnemar_one_sided(worse, better)
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_known_values() -> None:
    assert mcnemar_one_sided(1, 0) == 0.5
    assert mcnemar_one_sided(5, 0) == 1 / 32
    assert mcnemar_one_sided(3, 1) == 5 / 16
    assert mcnemar_one_sided(0, 4) == 1.0


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    assert mcnemar_one_sided(0, 0) == 1.0


def test_mcnemar_decreases_with_more_worse_flips() -> None:
    values = [mcnemar_one_sided(worse, 3) for worse in range(0, 20)]
    assert values == sorted(values, reverse=True)
    assert len(set(values)) == len(values)


# --- Holm --------------------------------------------------------------------------------------


def holm_reference(p: list[float]) -> list[float]:
    """Holm (1979) as in the textbooks: sort ascending, multiply the i-th (0-based) smallest by
    m - i, take the running maximum, cap at 1; returned in the input order."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        out[i] = min(1.0, running)
    return out


def test_holm_textbook_example() -> None:
    # m = 4: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06.
    raw = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}
    adjusted = holm(raw)
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert list(adjusted.keys()) != [] and set(adjusted) == set(raw)


def test_holm_second_textbook_example() -> None:
    # Five hypotheses; only the smallest survives at 0.05 (0.01 * 5 = 0.05 is not < 0.05).
    raw = {"h1": 0.01, "h2": 0.02, "h3": 0.03, "h4": 0.04, "h5": 0.2}
    assert holm(raw) == pytest.approx({"h1": 0.05, "h2": 0.08, "h3": 0.09, "h4": 0.09, "h5": 0.2})


def test_holm_caps_at_one_and_single_test_is_unchanged() -> None:
    assert holm({"only": 0.3}) == {"only": 0.3}
    assert holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}
    assert holm({}) == {}


def test_holm_matches_reference_on_random_families() -> None:
    rng = random.Random(20240501)
    for _ in range(300):
        m = rng.randint(1, 11)
        raw = [rng.choice([rng.random(), rng.random() ** 4, 1.0, 0.5]) for _ in range(m)]
        keys = [f"c{i}" for i in range(m)]
        adjusted = holm(dict(zip(keys, raw, strict=True)))
        expected = holm_reference(raw)
        assert [adjusted[k] for k in keys] == pytest.approx(expected, abs=1e-15)


def test_holm_is_monotone_at_least_raw_and_at_most_one() -> None:
    rng = random.Random(7)
    for _ in range(200):
        raw = {f"c{i}": rng.random() ** 3 for i in range(rng.randint(1, 11))}
        adjusted = holm(raw)
        ordered = sorted(raw, key=raw.__getitem__)
        values = [adjusted[k] for k in ordered]
        assert values == sorted(values)
        assert all(raw[k] <= adjusted[k] <= 1.0 for k in raw)


def test_holm_on_mcnemar_p_values_of_eleven_categories() -> None:
    raw = {f"cat{i}": mcnemar_one_sided(i, 0) for i in range(11)}
    adjusted = holm(raw)
    assert adjusted["cat10"] == pytest.approx(11 * 2**-10)
    assert adjusted["cat0"] == 1.0


# --- min_flips ---------------------------------------------------------------------------------


def test_min_flips_examples() -> None:
    assert min_flips(30, 0.05, 1) == 5
    assert min_flips(30, 0.05) == 5
    assert min_flips(6, 0.05, 11) is None
    assert min_flips(30, 0.05, 11) == 8
    assert min_flips(3, 0.05, 2) is None
    assert min_flips(4, 0.05, 1) is None  # 0.5**4 = 0.0625
    assert min_flips(5, 0.05, 1) == 5
    assert min_flips(0, 0.05) is None


@pytest.mark.parametrize(
    ("n", "alpha", "tests"),
    list(itertools.product([1, 2, 3, 5, 6, 10, 30, 50], [0.01, 0.05, 0.1, 0.2], [1, 2, 5, 11])),
)
def test_min_flips_is_the_fewest_that_reach_significance(n: int, alpha: float, tests: int) -> None:
    k = min_flips(n, alpha, tests)
    threshold = alpha / tests
    # with no reverse flips, k flips give p = 0.5**k
    smallest = math.ceil(math.log2(tests / alpha) + 1e-12)
    while 0.5**smallest >= threshold:  # guard the log's rounding
        smallest += 1
    if smallest > n:
        assert k is None
        assert 0.5**n >= threshold
    else:
        assert k == smallest
        assert 0.5**k < threshold
        assert 0.5 ** (k - 1) >= threshold
        assert mcnemar_one_sided(k, 0) < threshold <= mcnemar_one_sided(k - 1, 0)


def test_others_needed_follows_holms_steps() -> None:
    # 5 prompts: p >= 1/32, below 0.05/1 but not 0.05/2 or 0.05/3.
    assert others_needed(5, 0.05, 3) == 2
    assert others_needed(5, 0.05, 1) == 0
    assert others_needed(6, 0.05, 4) == 1  # 1/64 < 0.05/3, not 0.05/4
    assert others_needed(30, 0.05, 11) == 0
    assert others_needed(4, 0.05, 11) is None  # 1/16 >= 0.05 even at the last step
    # The count holds against holm() itself: with 2 others at p ~ 0, 1/32 is adjusted to 1/32.
    adjusted = holm({"a": 1e-6, "b": 1e-6, "small": mcnemar_one_sided(5, 0)})
    assert adjusted["small"] < 0.05
    one_other = holm({"a": 1e-6, "b": 1.0, "small": mcnemar_one_sided(5, 0)})
    assert one_other["small"] >= 0.05
