"""Fixtures of the acceptance tests: projects laid out like a user's repository, and ``dist``, which
runs a test once in one process and once over two xdist workers, as syrupy's own tests do. Only
tests whose behaviour depends on xdist take ``dist``: each of them is a full run of the suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import CLEAN_ENV, Dist, Project, lay_out


@pytest.fixture
def bare_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A user's repository without models: for runs that stop at collection, or whose targets
    are conftest doubles or served over HTTP."""
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    # One intra-op thread: two workers share two cores, and serial and parallel runs compute
    # with the same thread count.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lay_out(pytester.path)
    return Project(pytester)


@pytest.fixture
def project(bare_project: Project, toy_cache: Path) -> Project:
    """A user's repository with the built toy models in ``cache/`` and no results yet: the
    suite's default base and checkpoints run, and generate."""
    bare_project.toy = toy_cache / "toy"
    bare_project.new_cache("cache")
    return bare_project


@pytest.fixture(params=[0, 2], ids=["serial", "xdist"])
def dist(request: pytest.FixtureRequest) -> Dist:
    """The inner run in one process, then over two xdist workers: ``project.run(*dist.args)``."""
    return Dist(request.param)
