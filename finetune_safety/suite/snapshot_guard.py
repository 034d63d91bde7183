"""Which verdict snapshots a run may delete: unused ones, and only after a run of the whole gate.

syrupy, under ``--snapshot-update``, deletes the snapshots its bookkeeping calls unused, and it
calls unused the snapshots of selected tests that never compared them: in a run stopped by a
usage error before the gate was parametrized, under ``-x``, or when a test errored in setup. So
the gate's tests are kept out of syrupy's bookkeeping (syrupy still compares, writes and counts
their snapshots), a run stopped by a usage error leaves syrupy nothing to act on, and this guard
decides the gate's unused snapshots: files in the gate's snapshot folders that no gate test of
the configuration checks. It looks for them only after a run in which every gate test of the
configuration ran on every prompt; any other run deletes none and, with ``--snapshot-update``,
says it was partial.

Under xdist the workers collect and the controller sees every test's report: each worker hands
what it collected of the gate to the controller, which decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from syrupy.location import PyTestLocation

from finetune_safety.suite.run import SafetyRun, gate_items, safety_items
from finetune_safety.suite.snapshot import VerdictSnapshotExtension, shown_path

#: Where an xdist worker hands its ``GateSelection`` to the controller.
WORKER_OUTPUT = "finetune_safety_snapshots"
#: The fixture of the tests that compare verdict snapshots.
SNAPSHOT_FIXTURE = "safety_snapshot"


@dataclass(frozen=True)
class GateSelection:
    """What a process collected of the gate (every xdist worker collects the same)."""

    #: The node ids of the selected gate tests.
    selected: frozenset[str]
    #: How many gate tests the configuration has in the collected modules.
    whole: int
    limit: int | None
    #: The snapshot files of the selected snapshot tests.
    recorded: frozenset[str]
    #: (folder, file name prefix) of each snapshot test's files.
    folders: frozenset[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "selected": sorted(self.selected),
            "whole": self.whole,
            "limit": self.limit,
            "recorded": sorted(self.recorded),
            "folders": sorted(self.folders),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateSelection:
        return cls(
            frozenset(data["selected"]),
            data["whole"],
            data["limit"],
            frozenset(data["recorded"]),
            frozenset((folder, prefix) for folder, prefix in data["folders"]),
        )

    @property
    def snapshot_tests(self) -> int:
        return len(self.recorded)

    def partial(self, ran: set[str]) -> str | None:
        """Why this run did not run the whole gate on every prompt, or None when it did."""
        if self.limit is not None:
            return f"--safety-limit {self.limit}: the first {self.limit} prompt(s) per category"
        if len(self.selected) < self.whole:
            return f"{len(self.selected)} of {self.whole} gate tests selected"
        done = len(self.selected & ran)
        if done < len(self.selected):
            return f"{done} of {len(self.selected)} gate tests ran"
        return None

    def unused(self) -> list[Path]:
        """Files in the gate's snapshot folders that no selected snapshot test checks."""
        return sorted(
            path
            for folder, prefix in self.folders
            for path in Path(folder).glob(f"*.{VerdictSnapshotExtension.file_extension}")
            if path.name.startswith(prefix) and str(path) not in self.recorded
        )


def gate_selection(chosen: list[pytest.Function], whole: int, limit: int | None) -> GateSelection:
    """The selected gate tests and the snapshot files of those that compare snapshots."""
    recorded, folders = set(), set()
    for item in chosen:
        if SNAPSHOT_FIXTURE in item.fixturenames:
            location = PyTestLocation(item)
            recorded.add(VerdictSnapshotExtension.get_location(test_location=location, index=0))
            folder = VerdictSnapshotExtension.dirname(test_location=location)
            folders.add((folder, f"{item.originalname}["))
    selected = frozenset(i.nodeid for i in chosen)
    return GateSelection(selected, whole, limit, frozenset(recorded), frozenset(folders))


def _forget_gate(config: pytest.Config) -> None:
    """Take the gate's tests and modules out of syrupy's record of what was collected and
    selected, so syrupy never takes a gate snapshot for unused (its fallback scan of a test's
    folder, when no snapshot was compared, would take every one)."""
    syrupy = getattr(config, "_syrupy", None)
    if syrupy is None:  # -p no:syrupy
        return
    for item in gate_items(list(syrupy._collected_items.values())):
        syrupy._collected_items.pop(item.nodeid, None)
        syrupy._selected_items.pop(item.nodeid, None)
        syrupy._collected_modules.discard(PyTestLocation.module_path_key(item.path))


class SnapshotGuard:
    """Keeps the gate's snapshots out of syrupy's clean-up; finds and deletes unused ones."""

    def __init__(self, run: SafetyRun) -> None:
        self.run = run
        self.config = run.config
        self.selection: GateSelection | None = None
        #: The node ids whose test body ran (a call-phase report arrived).
        self.ran: set[str] = set()
        self.lines: list[str] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_finish(self, session: pytest.Session) -> Any:
        """After syrupy records the selection, also when the run stops with a usage error."""
        try:
            return (yield)
        finally:
            self._collected(session.items)

    def _collected(self, items: list[pytest.Item]) -> None:
        _forget_gate(self.config)  # also when every gate test was deselected
        chosen = safety_items(items)
        if not chosen:
            return
        safety = self.run.session
        if safety is None:  # a configuration error stops the run: it compared nothing
            syrupy = getattr(self.config, "_syrupy", None)
            if syrupy is not None:
                syrupy.start()
            return
        whole = sum(self.run.gate_size.values())
        self.selection = gate_selection(chosen, whole, safety.config.limit)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.ran.add(report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """On the xdist controller: what a worker collected of the gate."""
        data = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
        if data is not None and self.selection is None:
            self.selection = GateSelection.from_json(data)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            if self.selection is not None:
                workeroutput[WORKER_OUTPUT] = self.selection.to_json()
            return
        if self.selection is None or self.config.getoption("disable_unused_snapshots", False):
            return
        update = bool(self.config.getoption("update_snapshots", False))
        reason = self.selection.partial(self.ran)
        if reason is not None:
            if update or (self.selection.limit is not None and self.selection.snapshot_tests):
                self.lines.append(
                    f"finetune-safety: partial run ({reason}): verdict snapshots were compared "
                    "only on the tests and prompts that ran; the others stay as recorded and "
                    "none was deleted (a run of the whole gate finds unused ones)"
                )
            return
        unused = self.selection.unused()
        if unused:
            self.lines += [
                self._unused(session, unused, update),
                *(f"  {shown_path(p)}" for p in unused),
            ]

    def _unused(self, session: pytest.Session, unused: list[Path], update: bool) -> str:
        """Delete the unused snapshots under ``--snapshot-update``; else fail the run as syrupy
        does (unless ``--snapshot-warn-unused``). The line that heads their list."""
        what = f"{len(unused)} unused verdict snapshot(s), checked by no gate test of the run's"
        what += " configuration"
        if update and not self.config.getoption("no_cleanup", False):
            for path in unused:
                path.unlink(missing_ok=True)
            return f"finetune-safety: deleted {what}:"
        if update:
            return f"finetune-safety: {what}; kept (--snapshot-no-cleanup):"
        warn = self.config.getoption("warn_unused_snapshots", False)
        if not warn and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return (
            f"finetune-safety: {what}; a run of the whole gate with --snapshot-update deletes them:"
        )

    @pytest.hookimpl(trylast=True)  # after syrupy's snapshot report
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line in self.lines:
            terminalreporter.write_line(line)
