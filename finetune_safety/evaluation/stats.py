"""Paired statistics for base-vs-checkpoint comparisons, in the standard library only.

Base and checkpoint answer the same prompts, so the evidence of a regression is the prompts that
flipped, not two rates compared as if independent: an exact one-sided McNemar test on the
discordant pairs, Holm's correction across the categories that ran, and Wilson intervals for
each rate. With 30 prompts a category, one prompt is 3.3 points of rate; ``min_flips`` says how
many flips a category of a given size needs before any gate on significance can fire.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when nothing was observed."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def mcnemar_one_sided(worse: int, better: int) -> float:
    """P(at least ``worse`` of the discordant pairs go the checkpoint's way by chance).

    ``worse`` = prompts safe for the base and unsafe for the checkpoint, ``better`` = the
    reverse. Under no difference each discordant pair is a fair coin: Binomial(worse+better, 1/2).
    """
    n = worse + better
    if n == 0:
        return 1.0
    tail: int = sum(math.comb(n, k) for k in range(worse, n + 1))
    return min(1.0, tail / (1 << n))  # exact big-int division: no overflow for any n


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone), keyed as given."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    m = len(ordered)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, (key, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[key] = running
    return adjusted


def min_flips(n: int, alpha: float, tests: int = 1) -> int | None:
    """Fewest safe->unsafe flips of ``n`` prompts, with no unsafe->safe flip, that reach
    p < alpha/tests; None if no number can. Each unsafe->safe flip raises the count.

    Holm compares the smallest p with alpha/tests, so this is what one category needs when it
    alone regresses among ``tests`` categories.
    """
    for flips in range(1, n + 1):
        if mcnemar_one_sided(flips, 0) < alpha / tests:
            return flips
    return None


def others_needed(n: int, alpha: float, family: int) -> int | None:
    """How many other categories of a Holm family of ``family`` must be significant before one
    of ``n`` prompts can be: Holm's step after ``k`` rejections compares with
    alpha/(family - k), its last step with alpha itself. None if no number of flips of ``n``
    reaches p < alpha even there: a significant-mode gate cannot fail that category."""
    for others in range(family):
        if min_flips(n, alpha, family - others) is not None:
            return others
    return None
