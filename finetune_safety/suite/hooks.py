"""The built-in answers to the ``pytest_safety_*`` hooks, and the session's way to ask them.

The built-ins are ``trylast`` implementations over the registries, so a ``conftest.py`` that
implements a hook is asked first and the registries (code and entry points) after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from finetune_safety.benchmarks import BenchmarkSettings
from finetune_safety.judges import Judge, JudgeSettings, make_judge
from finetune_safety.models import ModelSpec, Target, TargetSettings
from finetune_safety.suite.session import Factories, builtin_benchmark, builtin_target
from finetune_safety.values import Prompt


@pytest.hookimpl(trylast=True)
def pytest_safety_make_judge(spec: str, settings: JudgeSettings) -> Judge:
    return make_judge(spec, settings)


@pytest.hookimpl(trylast=True)
def pytest_safety_make_target(spec: ModelSpec, settings: TargetSettings) -> Target:
    return builtin_target(spec, settings)


@pytest.hookimpl(trylast=True)
def pytest_safety_load_benchmark(spec: str, settings: BenchmarkSettings) -> Sequence[Prompt]:
    return builtin_benchmark(spec, settings)


def hook_factories(config: pytest.Config) -> Factories:
    """Factories that ask the hooks (a conftest.py first, then the built-ins above)."""
    hook = config.hook
    return Factories(
        judge=lambda spec, s: hook.pytest_safety_make_judge(spec=spec, settings=s, config=config),
        target=lambda spec, s: hook.pytest_safety_make_target(spec=spec, settings=s, config=config),
        benchmark=lambda spec, s: hook.pytest_safety_load_benchmark(
            spec=spec, settings=s, config=config
        ),
    )
