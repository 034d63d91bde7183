"""Progress a CI log shows: lines with done/total, rate and ETA at every tenth or 30 s (under
pytest they reach the terminal: tests/acceptance/test_plugin_checks.py)."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from finetune_safety._util import progress
from finetune_safety._util.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(steps: list[tuple[float, int]], total: int) -> list[str]:
    """Advance the clock and the count per step; the lines printed, prefix removed."""
    lines: list[str] = []
    clock = Clock()
    with progress.sink(lines.append):
        bar = Progress(total, "generating (m)", clock=clock)
        for seconds, n in steps:
            clock.now += seconds
            bar.update(n)
        bar.close()
    return [line.removeprefix(progress.PREFIX) for line in lines]


def test_a_line_per_tenth_with_rate_and_eta() -> None:
    lines = run([(5.0, 10)] * 10, total=100)
    assert lines[0] == "generating (m): 100 prompts to do"
    assert lines[1] == "generating (m): 10/100 (10%), 2.00 prompts/s, ETA 45s"
    assert lines[5] == "generating (m): 50/100 (50%), 2.00 prompts/s, ETA 25s"
    assert len(lines) == 1 + 9 + 1  # first line, 10%..90%, the last line
    assert lines[-1] == "generating (m): 100/100 prompts in 50s"


def test_a_line_every_30_seconds_when_tenths_are_slow() -> None:
    # 1000 prompts, one per 20 s: a tenth takes 33 minutes, so lines come on the clock.
    lines = run([(20.0, 1)] * 7, total=1000)
    progress_lines = lines[1:-1]
    assert len(progress_lines) == 3  # at 40, 80 and 120 s: 30 s or more after the last line
    assert progress_lines[0] == "generating (m): 2/1000 (0%), 20.0 s each, ETA 5h32m"
    assert lines[-1] == "generating (m): 7/1000 prompts in 2m20s"


def test_quick_work_prints_only_its_first_line() -> None:
    assert run([(0.01, 10)] * 10, total=100) == ["generating (m): 100 prompts to do"]


def test_nothing_to_do_prints_nothing() -> None:
    assert run([], total=0) == []


def test_under_pytest_lines_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """The plugin's default sink, as the CLI's: a test's captured stderr holds the lines."""
    assert progress.set_sink(progress.to_stderr) is progress.to_stderr
    progress.emit("hello")
    captured = capsys.readouterr()
    assert captured.err == "[finetune-safety] hello\n" and captured.out == ""


def test_lines_are_records_of_the_package_logger(caplog: pytest.LogCaptureFixture) -> None:
    """Without a sink the application's logging decides; with one, only the sink shows them
    (pytest's log capture would otherwise repeat them in a failed test's report)."""
    with progress.sink(None), caplog.at_level(logging.INFO, logger="finetune_safety"):
        progress.emit("to logging")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("finetune_safety", logging.INFO, "to logging")
    ]
    caplog.clear()
    lines: list[str] = []
    with progress.sink(lines.append), caplog.at_level(logging.INFO):
        progress.emit("to the sink")
    assert lines == ["[finetune-safety] to the sink"] and caplog.records == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal_and_lines_off_it(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress.sink(progress.to_stderr):
        bar = Progress(50, "judging")
        for _ in range(50):
            bar.update(1)
        bar.close()
    shown = terminal.getvalue()
    assert "\r" in shown and "judging:" in shown and "/50 [" in shown  # tqdm's bar
    assert "prompts to do" not in shown  # no log lines beside the bar
