"""The pytest plugin: options, fixtures and hooks, each handing off to ``finetune_safety.suite``.

Inert until used: outside the safety tests (``finetune_safety.gate``) it reads no config, prints
nothing and parametrizes nothing, and its fixtures all start with ``safety_``. Importing it
imports neither torch, transformers nor openai, so ``pytest --help`` and every xdist worker
start fast; models load only when a test first needs one.
"""

from __future__ import annotations

from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from finetune_safety.config import BASE_ALIAS, SafetyConfig, Thresholds, add_options
from finetune_safety.config.conditions import Condition
from finetune_safety.errors import UnavailableError
from finetune_safety.evaluation.case import CaseResult
from finetune_safety.evaluation.labels import LabelCheck
from finetune_safety.judges import Judge
from finetune_safety.models import Target
from finetune_safety.report.record import PROPERTY
from finetune_safety.suite import (
    CASE,
    CHECKPOINT,
    SafetyReporter,
    SafetyRun,
    SafetySession,
    SnapshotGuard,
    VerdictSnapshotExtension,
    check_report_options,
    gate_items,
    header,
    verdict_snapshot,
)
from finetune_safety.values import Prompt

RUN = pytest.StashKey[SafetyRun]()
#: The one line of the model or judge a test needs and this run cannot use.
FAULT = pytest.StashKey[str]()
MARKERS = {
    "safety_rate": "harmfulness rate <= max_rate, per checkpoint and category",
    "safety_regression": "rate and score deltas against the base model within limits",
    "safety_snapshot": "judge verdicts equal the stored syrupy snapshot",
    "safety_overall": "all selected categories pooled within the limits, per checkpoint",
    "safety_judge": "the judge's kappa against judge_labels >= min_judge_kappa, once per run",
    "safety_overrefusal": "benign prompts refused within max_overrefusal(_delta), per checkpoint",
    "safety_depth": "prefilled with k tokens of a harmful answer, within the limits vs the base",
}


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """``pytest_safety_make_judge``/``_make_target``/``_load_benchmark`` for conftest.py files;
    the built-ins answer last."""
    from finetune_safety.suite import hooks, hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    pluginmanager.register(hooks, "finetune-safety-builtins")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Every ``--safety-*`` option, from the settings schema (``finetune_safety.config``)."""
    group = parser.getgroup("finetune-safety", "safety regression suite for fine-tuned models")
    add_options(group.addoption)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    check_report_options(config)
    run = config.stash[RUN] = SafetyRun(config)
    config.pluginmanager.register(SafetyReporter(run), "finetune-safety-reporter")
    config.pluginmanager.register(SnapshotGuard(run), "finetune-safety-snapshots")


def pytest_unconfigure(config: pytest.Config) -> None:
    if RUN in config.stash:
        config.stash[RUN].close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    metafunc.config.stash[RUN].parametrize(metafunc)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """The optional gate tests this configuration leaves out (over-refusal without its limits,
    prefill depth without ``prefill_depths``) are never collected (the count stays)."""
    if name.startswith("test_"):
        return collector.config.stash[RUN].uncollected(name, obj)
    return None


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: no run counts a dropped test
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[RUN].drop_unconfigured(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[RUN].collected(session.items)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """The header, printed only when safety tests were selected."""
    session = config.stash[RUN].session
    return [header(session)] if gate_items(items) and session is not None else []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    """A model or judge this run cannot use fails the test in its call, not its setup: a failed
    test (not an error) whose report is the one line naming it, no traceback."""
    try:
        return (yield)
    except UnavailableError as exc:
        item.stash[FAULT] = str(exc)
        return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """The fault found in setup fails the test here; one met by the test itself (a test of
    your own asking the session) fails it with its line too."""
    if FAULT in item.stash:
        pytest.fail(item.stash[FAULT], pytrace=False)
    try:
        return (yield)
    except UnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Carry the case in an attribute of the report: xdist ships it to the controller, and
    JUnit XML (which records ``user_properties``) stays small."""
    report = yield
    if call.when == "call" and CASE in item.stash:
        report.__dict__[PROPERTY] = item.stash[CASE]
    return report


@pytest.fixture(scope="session")
def safety_session(pytestconfig: pytest.Config) -> SafetySession:
    """The run's lazily evaluated models, judge and store."""
    return pytestconfig.stash[RUN].required()


@pytest.fixture(scope="session")
def safety_config(safety_session: SafetySession) -> SafetyConfig:
    return safety_session.config


@pytest.fixture(scope="session")
def safety_benchmark(safety_session: SafetySession) -> list[Prompt]:
    """The benchmark's prompts (not ``benchmark``: that name belongs to pytest-benchmark)."""
    return safety_session.prompts


@pytest.fixture(scope="session")
def safety_judge(safety_session: SafetySession) -> Judge:
    return safety_session.judge


@pytest.fixture(scope="session")
def safety_judge_agreement(safety_session: SafetySession) -> LabelCheck:
    """The judge's verdicts on ``judge_labels``, judged once per session."""
    return safety_session.judge_agreement()


@pytest.fixture(scope="session")
def safety_base_model(safety_session: SafetySession) -> Target:
    """The base model's target; weights load only if a generation is missing."""
    return safety_session.target(BASE_ALIAS)


@pytest.fixture(scope="session")
def safety_checkpoint(request: pytest.FixtureRequest, safety_session: SafetySession) -> Target:
    """One configured checkpoint's target (parametrized over aliases)."""
    return safety_session.target(request.param)


@pytest.fixture
def safety_category(request: pytest.FixtureRequest) -> str:
    """The benchmark category of this test (parametrized over the categories)."""
    return str(request.param)


def _alias(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params[CHECKPOINT])


@pytest.fixture
def safety_condition(request: pytest.FixtureRequest, safety_session: SafetySession) -> Condition:
    """The deployment condition of this test (parametrized over ``conditions`` when set; else
    the checkpoint's template)."""
    return safety_session.condition(getattr(request, "param", None))


@pytest.fixture
def safety_result(
    request: pytest.FixtureRequest,
    safety_checkpoint: Target,
    safety_category: str,
    safety_condition: Condition,
    safety_session: SafetySession,
    safety_thresholds: Thresholds,
) -> CaseResult:
    """The checkpoint's result on the category beside the base's; carried into the reports."""
    alias = _alias(request)
    case = safety_session.case(alias, safety_category, safety_condition)
    request.config.stash[RUN].carry(request.node, case, safety_thresholds, alias)
    return case


@pytest.fixture
def safety_overall_result(
    request: pytest.FixtureRequest,
    safety_checkpoint: Target,
    safety_condition: Condition,
    safety_session: SafetySession,
) -> CaseResult:
    """The checkpoint on every selected category pooled, beside the base."""
    alias = _alias(request)
    case = safety_session.overall(alias, safety_condition)
    request.config.stash[RUN].carry(request.node, case, safety_session.config.thresholds, alias)
    return case


@pytest.fixture
def safety_overrefusal_result(
    request: pytest.FixtureRequest,
    safety_checkpoint: Target,
    safety_condition: Condition,
    safety_session: SafetySession,
) -> CaseResult:
    """The checkpoint's refusals of the benign prompts, beside the base's."""
    return safety_session.overrefusal(_alias(request), safety_condition)


@pytest.fixture
def safety_depth(request: pytest.FixtureRequest) -> int:
    """The prefill depth of this test (parametrized over ``prefill_depths``)."""
    return int(request.param)


@pytest.fixture
def safety_depth_result(
    request: pytest.FixtureRequest,
    safety_checkpoint: Target,
    safety_depth: int,
    safety_session: SafetySession,
) -> CaseResult:
    """The checkpoint beside its base, both prefilled to the depth; a model that cannot be
    prefilled (OpenAI's API) skips the test, saying why."""
    alias = _alias(request)
    refusal = safety_session.prefill_refusal(alias)
    if refusal is not None:
        pytest.skip(f"{alias}: cannot be prefilled: {refusal}")
    case = safety_session.depth_case(alias, safety_depth)
    limits = safety_session.config.thresholds
    request.config.stash[RUN].carry(request.node, case, limits, alias, safety_depth)
    return case


@pytest.fixture
def safety_thresholds(safety_config: SafetyConfig, safety_category: str) -> Thresholds:
    return safety_config.thresholds_for(safety_category)


@pytest.fixture
def safety_verdicts(
    safety_result: CaseResult, safety_config: SafetyConfig, pytestconfig: pytest.Config
) -> dict[str, Any]:
    """The case's verdicts as snapshotted (response text only with --safety-snapshot-responses)."""
    responses = pytestconfig.getoption("safety_snapshot_responses")
    return verdict_snapshot(safety_result, responses, safety_config.judge_combine)


@pytest.fixture
def safety_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """syrupy's ``snapshot`` writing one JSON file per checkpoint and category."""
    return snapshot.use_extension(VerdictSnapshotExtension)
