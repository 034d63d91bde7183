"""``threads``: torch's CPU thread count, set before or after torch is imported; xdist workers
each keep their share."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from finetune_safety._util import threads

PROBE = """
import os, sys
from finetune_safety._util import threads
before = threads.apply({threads})
import torch
after_import = torch.get_num_threads()
threads.apply({again})
print(before, after_import, torch.get_num_threads(), os.environ["OMP_NUM_THREADS"])
"""


def probe(count: int, again: int, workers: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "PYTEST_"))}
    if workers is not None:
        env["PYTEST_XDIST_WORKER_COUNT"] = workers
    code = PROBE.format(threads=count, again=again)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_set_before_and_after_torch_is_imported() -> None:
    assert probe(1, 2) == ["1", "1", "2", "2"]


def test_xdist_workers_keep_their_share() -> None:
    assert probe(4, 4, workers="2") == ["2", "2", "2", "2"]
    assert probe(3, 3, workers="4") == ["1", "1", "1", "1"]  # never below one


def test_none_leaves_torch_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.apply(None) is None
    assert "OMP_NUM_THREADS" not in os.environ
