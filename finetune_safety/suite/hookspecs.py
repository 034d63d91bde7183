"""Hooks a project's ``conftest.py`` implements to add judges, targets and benchmarks.

Each hook is ``firstresult``: the first implementation that returns something wins, so return
``None`` for specs you do not handle. The built-ins (the registries, which also read installed
entry points) answer last. An implementation may accept any subset of the arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import pytest

    from finetune_safety.benchmarks import BenchmarkSettings
    from finetune_safety.judges import Judge, JudgeSettings
    from finetune_safety.models import ModelSpec, Target, TargetSettings
    from finetune_safety.values import Prompt

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_safety_make_judge(
    spec: str, settings: JudgeSettings, config: pytest.Config
) -> Judge | None:
    """The judge for ``spec`` (e.g. ``guard:llama-guard@http://...``), or None if not yours."""


@hookspec(firstresult=True)
def pytest_safety_make_target(
    spec: ModelSpec, settings: TargetSettings, config: pytest.Config
) -> Target | None:
    """The target for ``spec`` (its ``model`` names it), or None if not yours; load no weights
    here. ``settings.name`` is the checkpoint alias, ``settings.template`` a template the run
    asks this model with (the base is asked with each checkpoint's template)."""


@hookspec(firstresult=True)
def pytest_safety_load_benchmark(
    spec: str, settings: BenchmarkSettings, config: pytest.Config
) -> Sequence[Prompt] | None:
    """The prompts for ``spec``, or None if not yours; ids must be unique."""
