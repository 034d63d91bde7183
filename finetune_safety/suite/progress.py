"""Progress lines under pytest: straight to the terminal, past output capture, as pytest's own
reporter writes; an xdist worker writes to its inherited stderr, which is the user's terminal."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import pytest

from finetune_safety._util.progress import Sink


def terminal_sink(config: pytest.Config) -> Sink:
    """A sink for ``progress`` that shows lines while tests run, not in a captured section."""
    worker = getattr(config, "workerinput", {}).get("workerid")

    def write(line: str) -> None:
        capman = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        with capman.global_and_fixture_disabled() if capman is not None else nullcontext():
            if worker is None and reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(line)
            else:
                prefix = f"[{worker}] " if worker else ""
                print(prefix + line, file=sys.stderr, flush=True)

    return write
