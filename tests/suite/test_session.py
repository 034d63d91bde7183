"""SafetySession without pytester: what one run evaluates, once, and how a case is paired."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from finetune_safety.benchmarks import BenchmarkSettings
from finetune_safety.config import SafetyConfig
from finetune_safety.errors import JudgeError
from finetune_safety.evaluation.stats import holm
from finetune_safety.judges import Judge, JudgeSettings
from finetune_safety.models import ModelSpec, Target, TargetSettings
from finetune_safety.models.templates import TEMPLATES
from finetune_safety.suite import Factories, SafetySession
from finetune_safety.testing.doubles import DictTarget, MarkerJudge
from finetune_safety.values import Prompt

PROMPTS = [
    Prompt(f"{c}-{i}", c, f"{c} request {i}") for c in ("malware", "fraud") for i in (1, 2, 3)
]
#: The checkpoint complies with every malware request and one fraud request; the base with none.
CHECKPOINT_ANSWERS = {"malware request": "UNSAFE step", "fraud request 1": "UNSAFE too"}


class Models:
    """A target factory over DictTargets that remembers each one it built, by alias and template."""

    def __init__(self) -> None:
        self.built: dict[tuple[str | None, str], DictTarget] = {}

    def __call__(self, spec: ModelSpec, settings: TargetSettings) -> Target:
        answers = CHECKPOINT_ANSWERS if spec.model == "tuned" else {}
        template = settings.template or TEMPLATES[spec.template or "plain"]
        target = DictTarget(str(settings.name), answers, template=template)
        self.built[(settings.name, target.template.name)] = target
        return target


def _session(
    tmp_path: Path, models: Models, limit: int | None = None, cache: str | None = None
) -> SafetySession:
    config = SafetyConfig(
        base=ModelSpec("aligned"),
        checkpoints={"ft": ModelSpec("tuned", template="alpaca")},
        benchmark="mine",
        judge="marker",
        limit=limit,
        cache_dir=tmp_path / "from-table",
    )

    def benchmark(spec: str, settings: BenchmarkSettings) -> Sequence[Prompt]:
        assert spec == "mine"
        return PROMPTS

    def judge(spec: str, settings: JudgeSettings) -> Judge:
        return MarkerJudge()

    factories = Factories(judge=judge, target=models, benchmark=benchmark)
    return SafetySession.open(config, tmp_path, cache, factories)


def test_open_loads_the_benchmark_and_the_cache_dir_by_the_one_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FINETUNE_SAFETY_CACHE", raising=False)
    session = _session(tmp_path, Models(), limit=2)
    assert [p.id for p in session.prompts] == ["malware-1", "malware-2", "fraud-1", "fraud-2"]
    assert session.categories == ["malware", "fraud"]
    assert session.cache_dir == tmp_path / "from-table" and session.cache_dir.is_dir()
    assert _session(tmp_path, Models(), cache="opt").cache_dir == tmp_path / "opt"


def test_a_factory_that_builds_no_judge_stops_the_session_at_open(tmp_path: Path) -> None:
    factories = Factories(judge=lambda spec, settings: "not a judge")  # type: ignore[arg-type,return-value]
    with pytest.raises(JudgeError, match="the factory returned"):
        SafetySession.open(SafetyConfig(judge="x"), tmp_path, str(tmp_path / "c"), factories)


def test_the_base_answers_with_the_checkpoint_s_template(tmp_path: Path) -> None:
    models = Models()
    session = _session(tmp_path, models)
    assert session.base_for("ft").template == TEMPLATES["alpaca"]
    assert session.target("base").name == "aligned"  # the base is shown by its model
    assert set(models.built) == {("ft", "alpaca"), ("aligned", "alpaca"), ("aligned", "plain")}


def test_each_model_answers_once_and_only_the_selected_categories(tmp_path: Path) -> None:
    models = Models()
    session = _session(tmp_path, models)
    session.select(["fraud"])
    assert set(session.records("ft")) == {"fraud"}
    session.case("ft", "fraud")
    session.overall("ft")
    tuned = models.built[("ft", "alpaca")]
    assert len(tuned.asked) == 3, "one batched pass, then lookups"
    assert all("fraud" in str(asked) for asked in tuned.asked)
    session.close()


def test_a_case_is_paired_and_holm_corrected_over_the_run_s_categories(tmp_path: Path) -> None:
    session = _session(tmp_path, Models())
    malware, fraud = session.case("ft", "malware"), session.case("ft", "fraud")
    assert (malware.base.n_unsafe, malware.result.n_unsafe) == (0, 3)
    assert (fraud.base.n_unsafe, fraud.result.n_unsafe) == (0, 1)
    assert malware.newly_unsafe == ("malware-1", "malware-2", "malware-3")
    expected = holm({"malware": malware.p_value, "fraud": fraud.p_value})
    assert (malware.p_holm, fraud.p_holm) == (expected["malware"], expected["fraud"])
    assert malware.family == fraud.family == 2
    assert malware.p_holm is not None and malware.p_holm > malware.p_value
    # By hand: raw p 1/8 (3 flips) and 1/2 (1 flip); Holm 2 * 1/8, then max(1/4, 1 * 1/2).
    assert (malware.p_value, fraud.p_value) == (0.125, 0.5)
    assert (malware.p_holm, fraud.p_holm) == (0.25, 0.5)


def test_holm_runs_over_the_selected_categories_only(tmp_path: Path) -> None:
    """After -k selects one category, its p is not adjusted for categories that did not run."""
    session = _session(tmp_path, Models())
    session.select(["malware"])
    malware = session.case("ft", "malware")
    assert (malware.p_holm, malware.family) == (malware.p_value, 1) == (0.125, 1)


def test_overall_pools_every_selected_category_in_one_test(tmp_path: Path) -> None:
    session = _session(tmp_path, Models())
    overall = session.overall("ft")
    assert overall.category == "overall"
    assert (overall.base.n, overall.result.n, overall.result.n_unsafe) == (6, 6, 4)
    assert overall.p_holm == overall.p_value and overall.family == 1
