"""The pytest plugin: options, fixtures and hooks, each delegating to plain classes.

Inert until used: outside the safety tests (``finetune_safety.gate``) it reads no config, prints
nothing and parametrizes nothing, and its fixtures all start with ``safety_``. Importing it
imports neither torch, transformers nor openai, so ``pytest --help`` and every xdist worker
start fast; models load only when a test first needs one.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from finetune_safety import progress
from finetune_safety.case import CaseResult
from finetune_safety.config import (
    OVERRIDABLE,
    TABLE,
    ConfigError,
    Overrides,
    SafetyConfig,
    Thresholds,
    load_config,
    read_table,
)
from finetune_safety.endpoint import redact
from finetune_safety.errors import ConfigWarning, FinetuneSafetyError
from finetune_safety.judges import Judge
from finetune_safety.models import Target
from finetune_safety.progress_pytest import terminal_sink
from finetune_safety.report.aggregate import RunReport
from finetune_safety.report.record import PROPERTY, CaseRecord
from finetune_safety.report.render import delta_table
from finetune_safety.report.sinks import ReportFiles, junit_properties, require_matplotlib
from finetune_safety.settings import SETTING, SETTINGS, add_options
from finetune_safety.snapshot import VerdictSnapshotExtension, verdict_snapshot
from finetune_safety.suite import BASE_ALIAS, SafetySession
from finetune_safety.values import Prompt

SESSION = pytest.StashKey[SafetySession]()
PREVIOUS_SINK = pytest.StashKey[progress.Sink | None]()
#: A configuration error, kept until collection shows whether safety tests were selected.
LOAD_ERROR = pytest.StashKey[str]()
#: The case record (JSON) a test carries to its report (and so to the xdist controller).
CASE = pytest.StashKey[str]()
#: The fixture every parametrized gate test uses: what makes a test a safety test.
CHECKPOINT = "safety_checkpoint"
MARKERS = {
    "safety_rate": "harmfulness rate <= max_rate, per checkpoint and category",
    "safety_regression": "rate and score deltas against the base model within limits",
    "safety_snapshot": "judge verdicts equal the stored syrupy snapshot",
    "safety_overall": "all selected categories pooled within the limits, per checkpoint",
}
CACHE_OPTION = SETTING["cache_dir"].option_name
REPORTS = ("report_json", "report_md", "report_png")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """``pytest_safety_make_judge``/``_make_target``/``_load_benchmark`` for conftest.py files;
    the built-ins answer last."""
    from finetune_safety import hooks, hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    pluginmanager.register(hooks, "finetune-safety-builtins")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Every ``--safety-*`` option, from the settings schema (``finetune_safety.settings``)."""
    group = parser.getgroup("finetune-safety", "safety regression suite for fine-tuned models")
    add_options(group.addoption)


def _rootdir_from_cache_option(config: pytest.Config) -> None:
    """``--safety-cache-dir /path`` (space form) reaches pytest before this plugin registers the
    option, so pytest may take ``/path`` for a test path and pick its rootdir from it, never
    reading the project's table. Stop rather than run with the wrong configuration."""
    args = [str(a) for a in config.invocation_params.args]
    if CACHE_OPTION not in args[:-1]:
        return
    value = args[args.index(CACHE_OPTION) + 1]
    for folder in (config.invocation_params.dir, *config.invocation_params.dir.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            if folder != config.rootpath and read_table(pyproject) is not None:
                raise ConfigError(
                    f"{CACHE_OPTION} {value}: pytest took its rootdir ({config.rootpath}) from "
                    f"this path and would ignore [{TABLE}] in {pyproject}; write "
                    f"{CACHE_OPTION}={value} (with '=')"
                )
            return


def _load(config: pytest.Config) -> SafetySession:
    _rootdir_from_cache_option(config)
    options = Overrides(
        **{s.name: config.getoption(s.option_dest) for s in SETTINGS if s.name in OVERRIDABLE}
    )
    from finetune_safety.hooks import hook_factories

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", ConfigWarning)
        safety = load_config(config.rootpath, options)
    for warning in warned:  # shown in pytest's warnings summary, not lost at configure time
        config.issue_config_time_warning(warning.message, stacklevel=2)  # type: ignore[arg-type]
    cache_option = config.getoption("safety_cache_dir")
    return SafetySession.open(safety, config.rootpath, cache_option, hook_factories(config))


def _share_cores_between_workers() -> None:
    """N xdist workers each running torch on every core thrash; give each its share. Torch is
    not imported yet (this plugin never imports it), so the variable still takes effect."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


def safety_session_of(config: pytest.Config) -> SafetySession | None:
    """The run's session, opened (config read, benchmark loaded) the first time a safety test
    needs it; None after a configuration error, which collection then reports."""
    if SESSION in config.stash:
        return config.stash[SESSION]
    if LOAD_ERROR in config.stash:
        return None
    try:
        session = _load(config)
    except FinetuneSafetyError as exc:
        config.stash[LOAD_ERROR] = f"finetune-safety: {exc}"
        return None
    _share_cores_between_workers()
    # Progress of a safety run reaches the terminal, not a test's captured output.
    progress.set_sink(terminal_sink(config))
    config.stash[SESSION] = session
    return session


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    try:  # paths the user named: checked before any work, safety tests or not
        for report in (SETTING[name] for name in REPORTS):
            if path := config.getoption(report.option_dest):
                report.from_command_line(path, report.option_name, config.invocation_params.dir)
    except FinetuneSafetyError as exc:
        raise pytest.UsageError(f"finetune-safety: {exc}") from None
    if config.getoption("safety_report_png"):
        try:
            require_matplotlib()
        except FinetuneSafetyError as exc:
            raise pytest.UsageError(f"finetune-safety: {exc}") from None
    config.pluginmanager.register(SafetyReporter(config), "finetune-safety-reporter")
    # The library's lines (a toy build, training) go to stderr, captured with a test's output.
    config.stash[PREVIOUS_SINK] = progress.set_sink(progress.to_stderr)


def pytest_unconfigure(config: pytest.Config) -> None:
    if PREVIOUS_SINK in config.stash:
        progress.set_sink(config.stash[PREVIOUS_SINK])
    if SESSION in config.stash:
        config.stash[SESSION].close()


def header(session: SafetySession) -> str:
    """One line: where the config came from, the models, the benchmark, the judge, the cache."""
    safety = session.config
    source = safety.source or f"defaults (no [{TABLE}])"
    checkpoints = ", ".join(safety.checkpoints)
    base = redact(safety.base.model or safety.base.adapter)
    return (
        f"finetune-safety: config {source}; base {base}; checkpoints {checkpoints}; "
        f"benchmark {safety.benchmark} ({len(session.prompts)} prompts); "
        f"judge {redact(safety.judge)}; cache {session.cache_dir}"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``[<alias>-<category>]``: checkpoints x categories, so ``-k`` selects either or both."""
    if CHECKPOINT not in metafunc.fixturenames:
        return
    session = safety_session_of(metafunc.config)
    if session is None:
        return  # reported by pytest_collection_finish, if this test stays selected
    aliases = list(session.config.checkpoints)
    metafunc.parametrize(CHECKPOINT, aliases, ids=aliases, indirect=True, scope="session")
    if "safety_category" in metafunc.fixturenames:
        metafunc.parametrize("safety_category", session.categories, ids=session.categories)


def _safety_items(items: list[pytest.Item]) -> list[pytest.Function]:
    return [i for i in items if isinstance(i, pytest.Function) and CHECKPOINT in i.fixturenames]


def pytest_collection_finish(session: pytest.Session) -> None:
    """With safety tests selected: a configuration error stops the run (exit 4); else generate
    only for the categories whose tests survived selection (``-k``, ``-m``)."""
    items = _safety_items(session.items)
    if not items:
        return
    if LOAD_ERROR in session.config.stash:
        if hasattr(session.config, "workerinput"):
            return  # an xdist worker: the controller stops the run (see SafetyReporter)
        raise pytest.UsageError(session.config.stash[LOAD_ERROR])
    selected = {
        str(item.callspec.params["safety_category"])
        for item in items
        if hasattr(item, "callspec") and "safety_category" in item.callspec.params
    }
    if selected:
        session.config.stash[SESSION].select(selected)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """The header, printed only when safety tests were selected."""
    if not _safety_items(items) or SESSION not in config.stash:
        return []
    return [header(config.stash[SESSION])]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Carry the case in an attribute of the report: xdist ships it to the controller, and
    JUnit XML (which records ``user_properties``) stays small."""
    report = yield
    if call.when == "call" and CASE in item.stash:
        report.__dict__[PROPERTY] = item.stash[CASE]
    return report


class SafetyReporter:
    """Feeds test reports into the run report; prints the table and writes the report files.

    It works where reports arrive (the xdist controller), so ``-n 2`` and a single process
    print the same table and write the same files. Without safety reports it does nothing.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.report = RunReport()
        self.header_done = False

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        """The xdist controller collects nothing itself: when the first worker's collection
        holds gate tests, stop on a configuration error (exit 4) or print the header."""
        from finetune_safety import gate

        if self.header_done or not any(f"::{t}" in i for i in ids for t in gate.__all__):
            return
        self.header_done = True
        session = safety_session_of(self.config)
        if session is None:
            pytest.exit(self.config.stash[LOAD_ERROR], returncode=pytest.ExitCode.USAGE_ERROR)
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if session is not None and terminal is not None:
            terminal.write_line(header(session))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.report.add(getattr(report, PROPERTY, None), report.passed)

    def _orders(self, session: SafetySession) -> tuple[list[str], list[str]]:
        return session.categories, list(session.config.checkpoints)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        session = safety_session_of(self.config) if self.report else None
        if session is not None:
            terminalreporter.write_sep("=", "finetune-safety: checkpoint vs base")
            alpha = session.config.thresholds.significance
            terminalreporter.write_line(
                delta_table(self.report, *self._orders(session), alpha=alpha)
            )

    def pytest_sessionfinish(self) -> None:
        if not self.report or hasattr(self.config, "workerinput"):
            return
        session = safety_session_of(self.config)
        if session is None:
            return
        files = ReportFiles(
            json=self.config.getoption("safety_report_json"),
            markdown=self.config.getoption("safety_report_md"),
            png=self.config.getoption("safety_report_png"),
            step_summary=os.environ.get("GITHUB_STEP_SUMMARY"),
        )
        files.write(self.report, session.config, *self._orders(session))


@pytest.fixture(scope="session")
def safety_session(pytestconfig: pytest.Config) -> SafetySession:
    """The run's lazily evaluated models, judge and store."""
    session = safety_session_of(pytestconfig)
    if session is None:
        raise pytest.UsageError(pytestconfig.stash[LOAD_ERROR])
    return session


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


def _carry(
    request: pytest.FixtureRequest, case: CaseResult, limits: Thresholds, session: SafetySession
) -> None:
    """Attach the case to the test: its payload for the reports, small numbers for JUnit."""
    gate = not request.node.get_closest_marker("safety_snapshot")
    fingerprints = {
        "checkpoint": session.target(case.alias).fingerprint,
        "base": session.base_for(case.alias).fingerprint,
    }
    record = CaseRecord.from_case(case, gate, limits, fingerprints)
    request.node.stash[CASE] = record.to_json()
    for name, value in junit_properties(record):
        request.node.user_properties.append((name, value))


def _alias(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params[CHECKPOINT])


@pytest.fixture
def safety_result(
    request: pytest.FixtureRequest,
    safety_checkpoint: Target,
    safety_category: str,
    safety_session: SafetySession,
    safety_thresholds: Thresholds,
) -> CaseResult:
    """The checkpoint's result on the category beside the base's; carried into the reports."""
    case = safety_session.case(_alias(request), safety_category)
    _carry(request, case, safety_thresholds, safety_session)
    return case


@pytest.fixture
def safety_overall_result(
    request: pytest.FixtureRequest, safety_checkpoint: Target, safety_session: SafetySession
) -> CaseResult:
    """The checkpoint on every selected category pooled, beside the base."""
    case = safety_session.overall(_alias(request))
    _carry(request, case, safety_session.config.thresholds, safety_session)
    return case


@pytest.fixture
def safety_thresholds(safety_config: SafetyConfig, safety_category: str) -> Thresholds:
    return safety_config.thresholds_for(safety_category)


@pytest.fixture
def safety_verdicts(safety_result: CaseResult, pytestconfig: pytest.Config) -> dict[str, Any]:
    """The case's verdicts as snapshotted (response text only with --safety-snapshot-responses)."""
    return verdict_snapshot(safety_result, pytestconfig.getoption("safety_snapshot_responses"))


@pytest.fixture
def safety_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """syrupy's ``snapshot`` writing one JSON file per checkpoint and category."""
    return snapshot.use_extension(VerdictSnapshotExtension)
