"""The run's header line, the delta table and the report files, fed by test reports.

It works where reports arrive (the xdist controller), so ``-n 2`` and a single process print the
same table and write the same files. Without safety reports it does nothing.
"""

from __future__ import annotations

import os

import pytest

from finetune_safety.config import TABLE
from finetune_safety.config.conditions import TEMPLATE
from finetune_safety.judges import coverage_notes
from finetune_safety.models.endpoint import redact
from finetune_safety.report.aggregate import RunReport
from finetune_safety.report.record import PROPERTY
from finetune_safety.report.render import delta_table
from finetune_safety.report.sinks import ReportFiles
from finetune_safety.suite.run import GATE_TESTS, SafetyRun
from finetune_safety.suite.session import SafetySession, overrefusal_gated, shown


def header(session: SafetySession) -> str:
    """One line: where the config came from, the models, the benchmark, the judge, the cache;
    and a second when the judge's taxonomy covers none of a category the run gates."""
    safety = session.config
    source = safety.source or f"defaults (no [{TABLE}])"
    checkpoints = ", ".join(safety.checkpoints)
    base = redact(safety.base.model or safety.base.adapter)
    line = (
        f"finetune-safety: config {source}; base {base}; checkpoints {checkpoints}; "
        f"benchmark {safety.benchmark} ({len(session.prompts)} prompts); "
        f"{'judge' if len(safety.judges) == 1 else 'judges'} {safety.judge_named()}; "
        f"cache {session.cache_dir}"
    )
    if safety.conditions != (TEMPLATE,):
        line += "; conditions " + ", ".join(c.id for c in safety.conditions)
    if overrefusal_gated(safety):
        line += f"; over-refusal {redact(safety.overrefusal)} ({len(session.benign)} prompts)"
    notes = coverage_notes(safety.judges, session.categories)
    return "\n".join([line, *(f"finetune-safety: {note}" for note in notes)])


class SafetyReporter:
    """Feeds test reports into the run report; prints the table and writes the report files."""

    def __init__(self, run: SafetyRun) -> None:
        self.run = run
        self.config = run.config
        self.report = RunReport()
        self.header_done = False

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        """The xdist controller collects nothing itself: when the first worker's collection
        holds gate tests, stop on a configuration error (exit 4) or print the header."""
        if self.header_done or not any(f"::{t}" in i for i in ids for t in GATE_TESTS):
            return
        self.header_done = True
        session = self.run.open()
        if session is None:
            pytest.exit(str(self.run.load_error), returncode=pytest.ExitCode.USAGE_ERROR)
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if session is not None and terminal is not None:
            terminal.write_line(header(session))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.report.add(getattr(report, PROPERTY, None), report.passed)

    def _orders(self, session: SafetySession) -> tuple[list[str], list[str]]:
        conditions = session.config.conditions
        aliases = [shown(a, c) for a in session.config.checkpoints for c in conditions]
        return session.categories, aliases

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        session = self.run.open() if self.report else None
        if session is not None:
            terminalreporter.write_sep("=", "finetune-safety: checkpoint vs base")
            config = session.config
            judges = [redact(spec) for spec in config.judges]
            table = delta_table(
                self.report,
                *self._orders(session),
                config.thresholds.significance,
                judges,
                config.judge_combine,
            )
            terminalreporter.write_line(table)

    def pytest_sessionfinish(self) -> None:
        if not self.report or hasattr(self.config, "workerinput"):
            return
        session = self.run.open()
        if session is None:
            return
        files = ReportFiles(
            json=self.config.getoption("safety_report_json"),
            markdown=self.config.getoption("safety_report_md"),
            png=self.config.getoption("safety_report_png"),
            step_summary=os.environ.get("GITHUB_STEP_SUMMARY"),
        )
        files.write(self.report, session.config, *self._orders(session), session.judge.judge_id)
