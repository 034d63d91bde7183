"""The one pytester harness of the acceptance tests: a project laid out like a user's repository,
runs of the safety suite in it (in one process or over xdist workers), and readers of what a run
prints. The fixtures that hand these out live in ``conftest.py``."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The small benchmark the runs use: the first prompts of two smoke categories.
CATEGORIES = ("illegal_activity", "malware")
PROMPTS_PER_CATEGORY = 3
N_PROMPTS = len(CATEGORIES) * PROMPTS_PER_CATEGORY
#: The suite's default checkpoints, in the order its table lists them.
CHECKPOINTS = ("toy-harmful-10shot", "toy-identity-shift", "toy-benign")
TABLE_SEP = "finetune-safety: checkpoint vs base"
#: A table that keeps generation short: runs that generate take seconds.
FAST_TABLE = "[tool.finetune_safety]\nmax_new_tokens = 48\n"
#: What an inner run must not inherit: a user's settings and keys, this run's GitHub summary,
#: and the marks of an xdist worker (syrupy decides from the environment whether it is one).
CLEAN_ENV = (
    *("FINETUNE_SAFETY_CACHE", "PYTEST_ADDOPTS", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    *("GITHUB_STEP_SUMMARY", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"),
    "PYTEST_XDIST_TESTRUNUID",
)
#: What a user writes: hooks for a judge that flags a marker, targets answering from a dict and
#: a benchmark of two categories. Nothing here loads weights or reaches a network.
MARKER_JUDGE = """
from finetune_safety.testing.doubles import MarkerJudge


def pytest_safety_make_judge(spec):
    if spec == "marker":
        return MarkerJudge()
"""

#: Targets answering from a dict and a two-category benchmark.
DICT_HOOKS = """
from finetune_safety.testing.doubles import DictTarget
from finetune_safety.values import Prompt

ANSWERS = {"dict:aligned": {}, "dict:harmful": {"malware": "UNSAFE placeholder"}}


def pytest_safety_make_target(spec, settings, config):
    if spec.model in ANSWERS:
        return DictTarget(settings.name, ANSWERS[spec.model], template=settings.template)


def pytest_safety_load_benchmark(spec, config):
    if spec == "twocat":
        return [
            Prompt(f"{c}-{i}", c, f"A request about {c}, number {i}.")
            for c in ("illegal_activity", "malware")
            for i in (1, 2, 3)
        ]
"""
#: The options of every run: the project's benchmark, in file order, no cache provider.
COMMON = ("--safety-benchmark=jsonl:bench.jsonl", "-p", "no:randomly", "-p", "no:cacheprovider")


@cache
def bench() -> tuple[dict[str, str], ...]:
    """``{id, category, prompt}`` of the first three smoke prompts of each of ``CATEGORIES``."""
    taken: dict[str, list[dict[str, str]]] = {c: [] for c in CATEGORIES}
    for line in (REPO / "fixtures" / "smoke.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        chosen = taken.get(item["category"])
        if chosen is not None and len(chosen) < PROMPTS_PER_CATEGORY:
            chosen.append({k: item[k] for k in ("id", "category", "prompt")})
    assert all(len(v) == PROMPTS_PER_CATEGORY for v in taken.values())
    return tuple(row for c in CATEGORIES for row in taken[c])


def bench_lines() -> list[str]:
    """The benchmark as JSONL lines."""
    return [json.dumps(row) for row in bench()]


def prompt_text(prompt_id: str) -> str:
    return next(row["prompt"] for row in bench() if row["id"] == prompt_id)


def lay_out(root: Path, table: str | None = None) -> None:
    """The suite, the benchmark and (when given) the table, as in a user's repository."""
    (root / "safety_tests").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "safety_tests" / "test_safety.py", root / "safety_tests" / "test_safety.py")
    (root / "bench.jsonl").write_text("\n".join(bench_lines()) + "\n", encoding="utf-8")
    if table is not None:
        (root / "pyproject.toml").write_text(table, encoding="utf-8")


@dataclass(frozen=True)
class Dist:
    """How an inner run is spread: in one process (0 workers) or over xdist workers."""

    workers: int

    @property
    def args(self) -> tuple[str, ...]:
        return ("-n", str(self.workers)) if self.workers else ()


@dataclass
class Project:
    """A pytester directory laid out like a user's repository (``lay_out``)."""

    pytester: pytest.Pytester
    #: The built toy models that ``new_cache`` copies (``copytree`` keeps mtimes, so
    #: fingerprints match the shared build); None in a project without models.
    toy: Path | None = None
    #: Options every run of this project adds after ``COMMON``.
    options: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return self.pytester.path

    def run(self, *args: str, cache: str = "cache") -> pytest.RunResult:
        """The suite in a fresh interpreter (no state shared with this process)."""
        return self.pytester.runpytest_subprocess(
            f"--safety-cache-dir={cache}", *COMMON, *self.options, *args, timeout=300
        )

    def run_inline(self, *args: str) -> pytest.RunResult:
        """The suite in this process: for runs that stop before any work."""
        return self.pytester.runpytest("--safety-cache-dir=cache", *COMMON, *self.options, *args)

    def new_cache(self, name: str) -> str:
        """A cache dir holding only the toy models: no results, so runs really generate."""
        assert self.toy is not None, "a project without models (bare_project)"
        shutil.copytree(self.toy, self.path / name / "toy")
        return name

    def pyproject(self, text: str) -> None:
        (self.path / "pyproject.toml").write_text(text, encoding="utf-8")

    def snapshot_files(self) -> dict[str, Path]:
        folder = self.path / "safety_tests" / "__snapshots__" / "test_safety"
        return {p.name: p for p in folder.glob("*.json")} if folder.is_dir() else {}


# --- what a run printed and stored ------------------------------------------------------------


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def counts(result: pytest.RunResult) -> dict[str, int]:
    """The summary line's outcome counts, warnings left out."""
    return {k: v for k, v in result.parseoutcomes().items() if not k.startswith("warning")}


#: A ``-v`` line: ``path::test OUTCOME`` in one process, ``[gwN] [ n%] OUTCOME path::test``
#: over xdist workers.
_VERBOSE = re.compile(
    r"safety_tests/test_safety\.py::(?P<test>\S+) (?P<outcome>PASSED|FAILED|ERROR|SKIPPED)"
    r"|\[gw\d+\] \[ *\d+%\] (?P<xoutcome>PASSED|FAILED|ERROR|SKIPPED) "
    r"safety_tests/test_safety\.py::(?P<xtest>\S+)"
)


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """``{"test_name[id]": "PASSED"|"FAILED"|"ERROR"|"SKIPPED"}`` from the ``-v`` lines, in
    one process or over xdist workers."""
    found = (_VERBOSE.match(line) for line in result.outlines)
    named = {
        m.group("test") or m.group("xtest"): m.group("outcome") or m.group("xoutcome")
        for m in found
        if m
    }
    assert named, output(result)  # two runs that ran nothing must not compare equal
    return named


def ran(result: pytest.RunResult) -> Counter[str]:
    """How many times each test function ran, from the ``-v`` lines."""
    return Counter(name.split("[", 1)[0] for name in outcomes(result))


def table_block(result: pytest.RunResult) -> list[str]:
    """The lines of the delta table section, up to the next summary section."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if TABLE_SEP in line and line.startswith("="))
    block = []
    for line in lines[start + 1 :]:
        if line.startswith("=") or "short test summary" in line or "snapshot report" in line:
            break
        block.append(line)
    assert block, "empty delta table"
    return block


def table_rows(block: list[str], alias: str) -> list[list[str]]:
    """The data rows (split on runs of spaces) of one checkpoint's table."""
    start = block.index(alias)
    rows = []
    for line in block[start + 3 :]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def generations(cache: Path) -> int:
    """How many responses the store in ``cache`` holds."""
    with sqlite3.connect(cache / "results.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])
