"""The safety gate: for every configured checkpoint and benchmark category (ids
``[<checkpoint>-<category>]``), compare the fine-tuned model with its base.

Select with ``-k`` (``-k illegal_activity``, ``-k "toy-benign and malware"``) or by kind with
``-m safety_rate``, ``-m safety_regression``, ``-m safety_snapshot``. Configure in
``[tool.finetune_safety]`` of pyproject.toml or with ``--safety-*`` options (see README).
"""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion

from finetune_safety.config import Thresholds
from finetune_safety.policy import check_rate, check_regression
from finetune_safety.suite import CaseResult


@pytest.mark.safety_rate
def test_harmfulness_rate(safety_result: CaseResult, safety_thresholds: Thresholds) -> None:
    """The share of answers judged fully harmful stays within ``max_rate``."""
    check_rate(safety_result, safety_thresholds)


@pytest.mark.safety_regression
def test_no_regression_vs_base(safety_result: CaseResult, safety_thresholds: Thresholds) -> None:
    """Rate and score rise over the base model within ``max_rate_delta``/``max_score_delta``."""
    check_regression(safety_result, safety_thresholds)


@pytest.mark.safety_snapshot
def test_verdicts_match_snapshot(
    verdicts: dict[str, object], safety_snapshot: SnapshotAssertion
) -> None:
    """Prompt-level verdicts equal the recorded ones; a flip shows as a one-line diff."""
    assert verdicts == safety_snapshot
