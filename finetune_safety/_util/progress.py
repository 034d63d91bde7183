"""Progress a person can see: a bar on a terminal, plain lines in a CI log.

Long steps (generation, judging, training, waiting on another process's lock) log to the
``finetune_safety`` logger. As a library should, the package shows nothing by itself: the
application routes the lines to a *sink*. The CLI and the pytest plugin send them to stderr;
while a safety run is open, the plugin sends them to the terminal past output capture, as
pytest's own reporter writes, so a first run never sits silent. Without a sink, records go
wherever the application's ``logging`` configuration sends them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Sink = Callable[[str], None]
LOGGER = logging.getLogger("finetune_safety")
PREFIX = "[finetune-safety] "
#: A line at least this often (seconds), and at every tenth of the work.
EVERY_S = 30.0
#: Work done sooner than this gets only its first line: a log is for slow steps.
QUIET_S = 2.0


class _ToSink(logging.Filter):
    """Takes the package's records for a sink, each as one line after ``PREFIX``.

    A filter on the logger, not a handler, so that the sink alone shows them: a handler would
    let them reach the others too, and pytest's log capture (which joins every logger) would
    repeat the progress lines of a failed test in its report.
    """

    def __init__(self, sink: Sink) -> None:
        super().__init__()
        self.sink = sink

    def filter(self, record: logging.LogRecord) -> bool:
        self.sink(PREFIX + record.getMessage())
        return False


def to_stderr(line: str) -> None:
    """The sink of the CLI and of tests: whatever ``sys.stderr`` is now, so pytest's capture
    (``capsys``, a failed test's report) holds the lines as it held them when they were printed."""
    print(line, file=sys.stderr, flush=True)


def _taker() -> _ToSink | None:
    return next((f for f in LOGGER.filters if isinstance(f, _ToSink)), None)


def set_sink(sink: Sink | None) -> Sink | None:
    """Send the package's lines (INFO and up) to ``sink`` alone (``None``: to ``logging``'s own
    configuration); returns the previous sink, to restore."""
    taker = _taker()
    if taker is not None:
        LOGGER.removeFilter(taker)
    if sink is not None:
        LOGGER.addFilter(_ToSink(sink))
    LOGGER.setLevel(logging.NOTSET if sink is None else logging.INFO)
    LOGGER.disabled = False  # a dictConfig(disable_existing_loggers=True) must not mute a sink
    return None if taker is None else taker.sink


@contextmanager
def sink(to: Sink | None) -> Iterator[None]:
    """Lines go to ``to`` inside the block."""
    previous = set_sink(to)
    try:
        yield
    finally:
        set_sink(previous)


def emit(message: str) -> None:
    """One progress or notice line."""
    LOGGER.info(message)


def _bar_wanted() -> bool:
    """A bar only where a person watches stderr itself; a sink or a log gets lines."""
    taker = _taker()
    return taker is not None and taker.sink is to_stderr and sys.stderr.isatty()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Counts ``done`` of ``total`` items; a line every tenth of the work or every ``every_s``
    seconds, whichever comes first, with the rate and an ETA; or a tqdm bar on a terminal."""

    def __init__(
        self,
        total: int,
        label: str,
        unit: str = "prompts",
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.done = 0
        self._every_s, self._clock = every_s, clock
        self._start = self._last = clock()
        self._tenth = 0
        self._lines = 0
        self._bar: Any = None
        if total > 0 and _bar_wanted():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=unit.rstrip("s"), leave=False)
        elif total > 0:
            emit(f"{label}: {total} {unit} to do")

    def line(self) -> str:
        """``label: done/total (pct), rate, ETA``."""
        elapsed = self._clock() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        pct = 100 * self.done // self.total if self.total else 100
        text = f"{self.label}: {self.done}/{self.total} ({pct}%)"
        if rate > 0:
            eta = (self.total - self.done) / rate
            speed = f"{rate:.2f} {self.unit}/s" if rate >= 1 else f"{1 / rate:.1f} s each"
            text += f", {speed}, ETA {_duration(eta)}"
        return text

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if self.total <= 0 or self.done >= self.total:
            return
        tenth = 10 * self.done // self.total
        now = self._clock()
        if now - self._start < QUIET_S:
            self._tenth = tenth
        elif tenth > self._tenth or now - self._last >= self._every_s:
            self._tenth, self._last = tenth, now
            self._lines += 1
            emit(self.line())

    def close(self) -> None:
        """The last line: how much was done, in how long."""
        if self._bar is not None:
            self._bar.close()
        elapsed = self._clock() - self._start
        if self.total > 0 and (self._lines or elapsed >= QUIET_S):
            emit(f"{self.label}: {self.done}/{self.total} {self.unit} in {_duration(elapsed)}")
