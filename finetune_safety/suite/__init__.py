"""The pytest side: the run's session and state, the reporter, the gate's limits, verdict
snapshots, the ``pytest_safety_*`` hooks and progress on pytest's terminal."""

from finetune_safety.suite.limits import check_overall, check_rate, check_regression
from finetune_safety.suite.reporter import SafetyReporter, header
from finetune_safety.suite.run import (
    CASE,
    CHECKPOINT,
    GATE_TESTS,
    SafetyRun,
    check_report_options,
    gate_items,
    safety_items,
)
from finetune_safety.suite.session import Factories, SafetySession
from finetune_safety.suite.snapshot import (
    VerdictSnapshotExtension,
    check_snapshot,
    verdict_snapshot,
)
from finetune_safety.suite.snapshot_guard import SnapshotGuard

__all__ = [
    "CASE", "CHECKPOINT", "GATE_TESTS", "Factories", "SafetyReporter", "SafetyRun",
    "SafetySession", "SnapshotGuard", "VerdictSnapshotExtension", "check_overall", "check_rate",
    "check_regression", "check_report_options", "check_snapshot", "gate_items", "header",
    "safety_items",
    "verdict_snapshot",
]  # fmt: skip
