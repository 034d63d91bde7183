"""One pytest run's safety state, which the plugin's hooks hand off to.

Inert until used: nothing here reads the configuration until a safety test is collected, and a
configuration error waits until collection shows whether safety tests were selected (then it
stops the run with exit code 4; in a project without safety tests it is never reported).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable

import pytest

from finetune_safety._util import progress
from finetune_safety.config import (
    OVERRIDABLE,
    SETTING,
    SETTINGS,
    TABLE,
    ConfigError,
    Overrides,
    SafetyConfig,
    Thresholds,
    load_config,
    read_table,
)
from finetune_safety.config.conditions import TEMPLATE
from finetune_safety.errors import ConfigWarning, FinetuneSafetyError
from finetune_safety.evaluation.case import CaseResult
from finetune_safety.models.precision import pin_xdist_worker
from finetune_safety.report.record import CaseRecord
from finetune_safety.report.sinks import junit_properties, require_matplotlib
from finetune_safety.suite.hooks import hook_factories
from finetune_safety.suite.progress import terminal_sink
from finetune_safety.suite.session import SafetySession, overrefusal_gated

#: The fixture every parametrized gate test uses: what makes a test a safety test.
CHECKPOINT = "safety_checkpoint"
#: The fixture of the one gate test that runs once per session, without a checkpoint: the
#: judge against ``judge_labels``.
JUDGE_AGREEMENT = "safety_judge_agreement"
#: The deployment condition a test runs under, parametrized when ``conditions`` is set.
CONDITION = "safety_condition"
#: The fixture of the over-refusal gate, run only with one of its limits set.
OVERREFUSAL = "safety_overrefusal_result"
#: The gate tests that run only when their settings are given, and whether they are.
OPTIONAL: dict[str, Callable[[SafetyConfig], bool]] = {
    JUDGE_AGREEMENT: lambda config: config.judge_labels is not None,
    OVERREFUSAL: overrefusal_gated,
}
#: The gate's tests (``finetune_safety.gate``), by name, as the xdist controller sees them.
GATE_TESTS = (
    "test_harmfulness_rate",
    "test_no_regression_vs_base",
    "test_overall_within_limits",
    "test_verdicts_match_snapshot",
    "test_judge_agreement",
    "test_overrefusal_within_limits",
    "test_prefill_depth",
)
#: The parameter of ``test_prefill_depth``: a prefill depth of ``prefill_depths``.
DEPTH = "safety_depth"
DEPTH_TEST = "test_prefill_depth"
GATE_MODULE = "finetune_safety.gate"
#: The case record (JSON) a test carries to its report (and so to the xdist controller).
CASE = pytest.StashKey[str]()
CACHE_OPTION = SETTING["cache_dir"].option_name
REPORTS = ("report_json", "report_md", "report_png")


def safety_items(items: list[pytest.Item]) -> list[pytest.Function]:
    """The collected tests that are safety tests (they use ``safety_checkpoint``)."""
    return [i for i in items if isinstance(i, pytest.Function) and CHECKPOINT in i.fixturenames]


def gate_items(items: list[pytest.Item]) -> list[pytest.Function]:
    """The safety tests and the judge's agreement test: the tests that need the configuration."""
    return [
        i
        for i in items
        if isinstance(i, pytest.Function)
        and (CHECKPOINT in i.fixturenames or JUDGE_AGREEMENT in i.fixturenames)
    ]


def check_report_options(config: pytest.Config) -> None:
    """Report paths the user named, and matplotlib for a PNG: checked before any work, safety
    tests or not."""
    try:
        for report in (SETTING[name] for name in REPORTS):
            if path := config.getoption(report.option_dest):
                report.from_command_line(path, report.option_name, config.invocation_params.dir)
        if config.getoption("safety_report_png"):
            require_matplotlib()
    except FinetuneSafetyError as exc:
        raise pytest.UsageError(f"finetune-safety: {exc}") from None


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


def _share_cores_between_workers() -> None:
    """N xdist workers each running torch on every core thrash; give each its share. Torch is
    not imported yet (this plugin never imports it), so the variable still takes effect."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


class SafetyRun:
    """The run's session, opened the first time a safety test needs it, or the configuration
    error that stopped it; progress lines routed to pytest's terminal meanwhile."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session: SafetySession | None = None
        #: A configuration error, kept until collection shows whether safety tests were selected.
        self.load_error: str | None = None
        #: How many tests each parametrized safety test function makes, by its node id: the
        #: whole gate, whatever ``-k``, ``-m`` or node ids then select.
        self.gate_size: dict[str, int] = {}
        # The library's lines (a toy build, training) go to stderr, captured with a test's output.
        self._previous_sink = progress.set_sink(progress.to_stderr)

    def _load(self) -> SafetySession:
        config = self.config
        _rootdir_from_cache_option(config)
        options = Overrides(
            **{s.name: config.getoption(s.option_dest) for s in SETTINGS if s.name in OVERRIDABLE}
        )
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always", ConfigWarning)
            safety = load_config(config.rootpath, options)
        for warning in warned:  # shown in pytest's warnings summary, not lost at configure time
            config.issue_config_time_warning(warning.message, stacklevel=2)  # type: ignore[arg-type]
        cache_option = config.getoption("safety_cache_dir")
        factories = hook_factories(config)
        judge = options.origin("judge")
        return SafetySession.open(safety, config.rootpath, cache_option, factories, judge)

    def open(self) -> SafetySession | None:
        """The session, opened (config read, benchmark loaded) on first call; None after a
        configuration error, which collection then reports."""
        if self.session is not None or self.load_error is not None:
            return self.session
        try:
            self.session = self._load()
        except FinetuneSafetyError as exc:
            self.load_error = f"finetune-safety: {exc}"
            return None
        _share_cores_between_workers()
        pin_xdist_worker()  # one GPU per worker, before torch starts CUDA
        # Progress of a safety run reaches the terminal, not a test's captured output.
        progress.set_sink(terminal_sink(self.config))
        return self.session

    def required(self) -> SafetySession:
        """The session for a fixture, its served models and judge asked once whether they
        answer (see ``SafetySession.preflight``); a configuration error is a usage error."""
        session = self.open()
        if session is None:
            raise pytest.UsageError(self.load_error)
        session.preflight()
        return session

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        """``[<alias>-<category>]``: checkpoints x categories, so ``-k`` selects either or both;
        with ``conditions`` set, ``[<alias>-<condition>-<category>]``."""
        if CHECKPOINT not in metafunc.fixturenames:
            return
        session = self.open()
        if session is None:
            return  # reported after collection, if this test stays selected
        aliases = list(session.config.checkpoints)
        metafunc.parametrize(CHECKPOINT, aliases, ids=aliases, indirect=True, scope="session")
        size = len(aliases)
        conditions = [c.id for c in session.config.conditions]
        if CONDITION in metafunc.fixturenames and conditions != [TEMPLATE.id]:
            metafunc.parametrize(CONDITION, conditions, ids=conditions, indirect=True)
            size *= len(conditions)
        if "safety_category" in metafunc.fixturenames:
            metafunc.parametrize("safety_category", session.categories, ids=session.categories)
            size *= len(session.categories)
        if DEPTH in metafunc.fixturenames:  # [<alias>-k<k>]
            depths = session.config.prefill_depths
            metafunc.parametrize(DEPTH, depths, ids=[f"k{k}" for k in depths])
            size *= len(depths)
        if not any(
            f in metafunc.fixturenames and not on(session.config) for f, on in OPTIONAL.items()
        ):
            self.gate_size[metafunc.definition.nodeid] = size

    def uncollected(self, name: str, obj: object) -> list[pytest.Item] | None:
        """``[]`` (collect nothing) for an optional gate test this configuration leaves out:
        the prefill-depth test without ``prefill_depths``, a test asking the over-refusal
        fixture without an over-refusal limit; so the run's output counts no test it does not
        run. Else None (collect as usual; a configuration error is reported after collection).
        Reads the configuration only for such a test."""
        depth = name == DEPTH_TEST and getattr(obj, "__module__", None) == GATE_MODULE
        try:
            overrefusal = OVERREFUSAL in inspect.signature(obj).parameters  # type: ignore[arg-type]
        except (TypeError, ValueError):
            overrefusal = False
        session = self.open() if depth or overrefusal else None
        if session is None:
            return None
        config = session.config
        off = (depth and not config.prefill_depths) or (
            overrefusal and not overrefusal_gated(config)
        )
        return [] if off else None

    def drop_unconfigured(self, items: list[pytest.Item]) -> None:
        """Without ``judge_labels`` the judge's agreement test is dropped, and without an
        over-refusal limit the over-refusal test (not deselected: neither is part of this
        configuration's gate, so no run counts it). Only a collected optional test reads the
        configuration here."""
        present = {f for f in OPTIONAL if any(f in getattr(i, "fixturenames", ()) for i in items)}
        if not present:
            return
        session = self.open()
        if session is None:
            return  # a configuration error is reported after collection
        off = {f for f in present if not OPTIONAL[f](session.config)}
        items[:] = [i for i in items if not off.intersection(getattr(i, "fixturenames", ()))]

    def collected(self, items: list[pytest.Item]) -> None:
        """With gate tests selected: a configuration error stops the run (exit 4); else
        generate only for the categories whose tests survived selection (``-k``, ``-m``)."""
        chosen = gate_items(items)
        if not chosen:
            return
        if self.load_error is not None:
            if hasattr(self.config, "workerinput"):
                return  # an xdist worker: the controller stops the run (see SafetyReporter)
            raise pytest.UsageError(self.load_error)
        selected = {
            str(item.callspec.params["safety_category"])
            for item in chosen
            if hasattr(item, "callspec") and "safety_category" in item.callspec.params
        }
        if selected and self.session is not None:
            self.session.select(selected)

    def carry(
        self,
        node: pytest.Item,
        case: CaseResult,
        limits: Thresholds,
        alias: str,
        depth: int | None = None,
    ) -> None:
        """Attach the case of checkpoint ``alias`` to its test: its payload for the reports,
        small numbers for JUnit. ``depth``: the case of a prefill depth, a point of the
        checkpoint's curve."""
        session = self.required()
        gate = not node.get_closest_marker("safety_snapshot")
        fingerprints = {
            "checkpoint": session.target(alias).fingerprint,
            "base": session.base_for(alias).fingerprint,
        }
        record = CaseRecord.from_case(case, gate, limits, fingerprints, depth)
        node.stash[CASE] = record.to_json()
        for name, value in junit_properties(record):
            node.user_properties.append((name, value))

    def close(self) -> None:
        progress.set_sink(self._previous_sink)
        if self.session is not None:
            self.session.close()
