"""The pytest plugin: options, fixtures and hooks, each delegating to plain classes.

Importing it imports neither torch, transformers nor openai, so ``pytest --help`` and every
xdist worker start fast; models load only when a test first needs one.
"""

from __future__ import annotations

import os

import pytest
from syrupy.assertion import SnapshotAssertion

from finetune_safety.config import Overrides, SafetyConfig, Thresholds, load_config
from finetune_safety.endpoint import redact
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.judges import Judge
from finetune_safety.models import Target
from finetune_safety.report import RunReport, case_property
from finetune_safety.report_files import ReportFiles, junit_properties, require_matplotlib
from finetune_safety.snapshot import VerdictSnapshotExtension, verdict_snapshot
from finetune_safety.suite import BASE_ALIAS, CaseResult, SafetySession
from finetune_safety.values import Prompt

SESSION = pytest.StashKey[SafetySession]()
MARKERS = {
    "safety_rate": "harmfulness rate <= max_rate, per checkpoint and category",
    "safety_regression": "rate and score deltas against the base model within limits",
    "safety_snapshot": "judge verdicts equal the stored syrupy snapshot",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("finetune-safety", "safety regression suite for fine-tuned models")
    group.addoption("--safety-base", help="base model spec (default: the toy aligned model)")
    group.addoption(
        "--safety-checkpoint",
        action="append",
        default=[],
        metavar="ALIAS=SPEC",
        help="checkpoint to test (repeatable); replaces the configured checkpoints",
    )
    group.addoption("--safety-benchmark", help="smoke, hexphi:DIR, advbench:CSV or jsonl:FILE")
    group.addoption("--safety-judge", help="judge spec (default: refusal)")
    group.addoption(
        "--safety-judge-prompt", metavar="FILE", help="judge prompt to bring (rubric judges)"
    )
    group.addoption("--safety-max-rate", type=float, help="max harmfulness rate, e.g. 0.1")
    group.addoption("--safety-max-rate-delta", type=float, help="max rate increase over base")
    group.addoption("--safety-cache-dir", help="results and toy models (default: .finetune_safety)")
    group.addoption("--safety-report-json", metavar="PATH", help="write the JSON run report")
    group.addoption("--safety-report-md", metavar="PATH", help="write the Markdown run report")
    group.addoption(
        "--safety-report-png", metavar="PATH", help="draw base vs checkpoint rates (matplotlib)"
    )
    group.addoption(
        "--safety-snapshot-responses",
        action="store_true",
        help="store response text in verdict snapshots (default: hashes only)",
    )


def _load(config: pytest.Config) -> SafetySession:
    options = Overrides(
        base=config.getoption("safety_base"),
        checkpoints=config.getoption("safety_checkpoint"),
        benchmark=config.getoption("safety_benchmark"),
        judge=config.getoption("safety_judge"),
        judge_prompt=config.getoption("safety_judge_prompt"),
        max_rate=config.getoption("safety_max_rate"),
        max_rate_delta=config.getoption("safety_max_rate_delta"),
    )
    safety = load_config(config.rootpath, options)
    return SafetySession.open(safety, config.rootpath, config.getoption("safety_cache_dir"))


def _share_cores_between_workers() -> None:
    """N xdist workers each running torch on every core thrash; give each its share. Torch is
    not imported yet (this plugin never imports it), so the variable still takes effect."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_configure(config: pytest.Config) -> None:
    _share_cores_between_workers()
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    try:
        config.stash[SESSION] = _load(config)
    except FinetuneSafetyError as exc:
        raise pytest.UsageError(f"finetune-safety: {exc}") from None
    if config.getoption("safety_report_png"):
        try:
            require_matplotlib()
        except FinetuneSafetyError as exc:
            raise pytest.UsageError(f"finetune-safety: {exc}") from None
    reporter = SafetyReporter(config, config.stash[SESSION])
    config.pluginmanager.register(reporter, "finetune-safety-reporter")


def pytest_unconfigure(config: pytest.Config) -> None:
    if SESSION in config.stash:
        config.stash[SESSION].close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash[SESSION]
    safety = session.config
    checkpoints = ", ".join(safety.checkpoints) or "none"
    base = redact(safety.base.model or safety.base.adapter)
    return [
        f"finetune-safety: base {base}; checkpoints {checkpoints}; benchmark {safety.benchmark} "
        f"({len(session.prompts)} prompts); judge {redact(safety.judge)}; "
        f"cache {session.cache_dir}"
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``[<alias>-<category>]``: checkpoints x categories, so ``-k`` selects either or both."""
    if "checkpoint" in metafunc.fixturenames:
        session = metafunc.config.stash[SESSION]
        aliases = list(session.config.checkpoints)
        metafunc.parametrize("checkpoint", aliases, ids=aliases, indirect=True, scope="session")
        if "category" in metafunc.fixturenames:
            metafunc.parametrize("category", session.categories, ids=session.categories)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Generate only for the categories whose tests survived selection (``-k``, ``-m``)."""
    selected = {
        str(item.callspec.params["category"])
        for item in session.items
        if isinstance(item, pytest.Function)
        and hasattr(item, "callspec")
        and "category" in item.callspec.params
    }
    if selected:
        session.config.stash[SESSION].select(selected)


class SafetyReporter:
    """Feeds test reports into the run report; prints the table and writes the report files.

    It works where reports arrive (the xdist controller), so ``-n 2`` and a single process
    print the same table and write the same files.
    """

    def __init__(self, config: pytest.Config, session: SafetySession) -> None:
        self.config = config
        self.session = session
        self.report = RunReport()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.report.add(report.user_properties, report.passed)

    def _orders(self) -> tuple[list[str], list[str]]:
        return self.session.categories, list(self.session.config.checkpoints)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.report:
            terminalreporter.write_sep("=", "finetune-safety: checkpoint vs base")
            alpha = self.session.config.thresholds.significance
            terminalreporter.write_line(self.report.table(*self._orders(), alpha=alpha))

    def pytest_sessionfinish(self) -> None:
        if not self.report or hasattr(self.config, "workerinput"):
            return
        categories, aliases = self._orders()
        safety = self.session.config
        files = ReportFiles(
            json=self.config.getoption("safety_report_json"),
            markdown=self.config.getoption("safety_report_md"),
            png=self.config.getoption("safety_report_png"),
            step_summary=os.environ.get("GITHUB_STEP_SUMMARY"),
        )
        files.write(self.report, safety, categories, aliases)


@pytest.fixture(scope="session")
def safety_session(pytestconfig: pytest.Config) -> SafetySession:
    """The run's lazily evaluated models, judge and store."""
    return pytestconfig.stash[SESSION]


@pytest.fixture(scope="session")
def safety_config(safety_session: SafetySession) -> SafetyConfig:
    return safety_session.config


@pytest.fixture(scope="session")
def safety_benchmark(safety_session: SafetySession) -> list[Prompt]:
    """The benchmark's prompts (not ``benchmark``: that name belongs to pytest-benchmark)."""
    return safety_session.prompts


@pytest.fixture(scope="session")
def judge(safety_session: SafetySession) -> Judge:
    return safety_session.judge


@pytest.fixture(scope="session")
def base_model(safety_session: SafetySession) -> Target:
    """The base model's target; weights load only if a generation is missing."""
    return safety_session.target(BASE_ALIAS)


@pytest.fixture(scope="session")
def checkpoint(request: pytest.FixtureRequest, safety_session: SafetySession) -> Target:
    """One configured checkpoint's target (parametrized over aliases)."""
    return safety_session.target(request.param)


@pytest.fixture
def safety_result(
    request: pytest.FixtureRequest, checkpoint: Target, category: str, safety_session: SafetySession
) -> CaseResult:
    """The checkpoint's result on ``category`` beside the base's; carried into the reports."""
    alias = request.node.callspec.params["checkpoint"]
    case = safety_session.case(alias, category)
    gate = any(request.node.get_closest_marker(m) for m in ("safety_rate", "safety_regression"))
    request.node.user_properties.append(case_property(case, gate))
    for name, value in junit_properties(case):
        request.node.user_properties.append((name, value))
    return case


@pytest.fixture
def safety_thresholds(safety_config: SafetyConfig, category: str) -> Thresholds:
    return safety_config.thresholds_for(category)


@pytest.fixture
def verdicts(safety_result: CaseResult, pytestconfig: pytest.Config) -> dict[str, object]:
    """The case's verdicts as snapshotted (hashes; text only with --safety-snapshot-responses)."""
    return verdict_snapshot(safety_result, pytestconfig.getoption("safety_snapshot_responses"))


@pytest.fixture
def safety_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """syrupy's ``snapshot`` writing one JSON file per checkpoint and category."""
    return snapshot.use_extension(VerdictSnapshotExtension)
