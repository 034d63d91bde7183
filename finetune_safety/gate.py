"""The safety gate's tests, shipped with the library so a suite cannot drift from it.

A project's ``safety_tests/test_safety.py`` is one line, ``from finetune_safety.gate import *``;
the plugin parametrizes these tests over the configured checkpoints (``[<checkpoint>]``) and
benchmark categories (``[<checkpoint>-<category>]``), and with ``conditions`` set over the
system prompts (``[<checkpoint>-<condition>-<category>]``), so ``-k illegal_activity`` selects a
category and ``-m safety_rate`` (``safety_regression``, ``safety_snapshot``, ``safety_overall``,
``safety_judge``, ``safety_overrefusal``, ``safety_depth``) a kind of test.
``test_judge_agreement`` runs once per session, and only with ``judge_labels`` set;
``test_overrefusal_within_limits`` only with ``max_overrefusal`` or ``max_overrefusal_delta``
set; ``test_prefill_depth`` (``[<checkpoint>-k<k>]``) only with ``prefill_depths`` set.
Configure in ``[tool.finetune_safety]`` or with ``--safety-*`` options.
"""

from __future__ import annotations

from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from finetune_safety.config import SafetyConfig, Thresholds
from finetune_safety.evaluation.case import CaseResult
from finetune_safety.evaluation.labels import LabelCheck
from finetune_safety.suite.limits import (
    check_agreement,
    check_overall,
    check_overrefusal,
    check_rate,
    check_regression,
)
from finetune_safety.suite.run import GATE_TESTS
from finetune_safety.suite.snapshot import check_snapshot

__all__ = list(GATE_TESTS)  # so ``from finetune_safety.gate import *`` collects exactly these


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
    request: pytest.FixtureRequest,
    safety_verdicts: dict[str, Any],
    safety_snapshot: SnapshotAssertion,
    safety_config: SafetyConfig,
) -> None:
    """Prompt-level verdicts equal the recorded ones; a flip fails with one line naming it.
    Under ``--safety-limit`` only the prompts that ran are compared."""
    strict, limit = safety_config.snapshot_strict, safety_config.limit
    check_snapshot(safety_snapshot, safety_verdicts, request.node.nodeid, strict, limit)


@pytest.mark.safety_overall
def test_overall_within_limits(
    safety_overall_result: CaseResult, safety_config: SafetyConfig
) -> None:
    """All selected categories pooled stay within the global limits: a small rise spread over
    many categories fails here even when no single category's test does."""
    check_overall(safety_overall_result, safety_config.thresholds)


@pytest.mark.safety_judge
def test_judge_agreement(safety_judge_agreement: LabelCheck, safety_config: SafetyConfig) -> None:
    """The judge agrees with the labelled answers of ``judge_labels``: Cohen's kappa at least
    ``min_judge_kappa``, so the gate fails when its instrument is off."""
    assert safety_config.judge_labels is not None
    check_agreement(
        safety_judge_agreement, safety_config.min_judge_kappa, safety_config.judge_labels
    )


@pytest.mark.safety_overrefusal
def test_overrefusal_within_limits(
    safety_overrefusal_result: CaseResult, safety_config: SafetyConfig
) -> None:
    """The checkpoint refuses the benign prompts (``overrefusal``) within ``max_overrefusal``
    and no more than ``max_overrefusal_delta`` above its base: refusing what it used to
    answer is a regression too."""
    check_overrefusal(safety_overrefusal_result, safety_config.thresholds)


@pytest.mark.safety_depth
def test_prefill_depth(safety_depth_result: CaseResult, safety_config: SafetyConfig) -> None:
    """With each answer begun by the first k tokens of a harmful one, the checkpoint stays
    within the global limits, beside its base prefilled alike (every prompt pooled): a
    fine-tune that makes the model follow a harmful start it used to turn back from fails."""
    check_overall(safety_depth_result, safety_config.thresholds)
