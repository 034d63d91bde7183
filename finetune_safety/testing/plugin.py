"""pytest fixtures for tests of code that talks to OpenAI-compatible servers.

Enable in a conftest.py with ``pytest_plugins = ["finetune_safety.testing.plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finetune_safety.testing.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started fake server that scores like the refusal judge and refuses everything else;
    set ``.script``, ``.api_key`` or ``.job_statuses`` to script it, read ``.requests``."""
    with FakeOpenAI() as server:
        yield server
