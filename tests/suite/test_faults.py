"""A model or judge the run cannot use is found once and named in one line by each use after:
a checkpoint whose spec resolves to nothing, a served checkpoint that does not answer the
preflight, a judge that does not answer or fails while judging. The rest of the run goes on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from finetune_safety.config import SafetyConfig
from finetune_safety.errors import JudgeError, ModelLoadError, UnavailableError
from finetune_safety.judges import Judge, JudgeSettings, make_judge
from finetune_safety.models import ModelSpec, Target, TargetSettings, Transport
from finetune_safety.suite import Factories, SafetySession
from finetune_safety.suite.faults import Faults
from finetune_safety.suite.session import builtin_target
from finetune_safety.testing.doubles import DictTarget, MarkerJudge
from finetune_safety.testing.fake_openai import FakeOpenAI, Reply, unreachable_url
from finetune_safety.values import Prompt, Verdict

PROMPTS = [Prompt(f"fraud-{i}", "fraud", f"fraud request {i}") for i in (1, 2, 3)]


class Models:
    """Doubles by spec; ``missing`` specs fail to resolve; ``openai:`` specs are real targets.
    Counts each resolution, by alias."""

    def __init__(self, missing: Sequence[str] = ()) -> None:
        self.missing = set(missing)
        self.resolved: list[str] = []
        self.built: list[DictTarget] = []

    def __call__(self, spec: ModelSpec, settings: TargetSettings) -> Target:
        self.resolved.append(str(settings.name))
        if spec.model in self.missing:
            raise ModelLoadError(f"model {spec.model!r}: no directory\nand not a hub id")
        if str(spec.model).startswith("openai:"):
            return builtin_target(spec, settings)
        target = DictTarget(str(settings.name), {}, template=settings.template)
        self.built.append(target)
        return target


class FailingJudge(MarkerJudge):
    """A judge whose server stops answering once judging starts; counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        self.calls += 1
        raise JudgeError("the judge's server went away")


def session(
    tmp_path: Path,
    models: Models,
    checkpoints: dict[str, str],
    judge: Judge | None = None,
    judge_spec: str = "marker",
    transport: Transport | None = None,
) -> SafetySession:
    config = SafetyConfig(
        base=ModelSpec("aligned"),
        checkpoints={alias: ModelSpec(spec) for alias, spec in checkpoints.items()},
        judge=judge_spec,
        transport=transport or Transport(),
    )

    def make(spec: str, settings: JudgeSettings) -> Judge:
        return judge or MarkerJudge()

    factories = Factories(make, models, lambda spec, settings: PROMPTS)
    opened = SafetySession.open(config, tmp_path, str(tmp_path / "cache"), factories, "--x")
    opened.preflight()
    return opened


def failure(call: object) -> str:
    with pytest.raises(UnavailableError) as info:
        call()  # type: ignore[operator]
    return str(info.value)


def test_a_checkpoint_that_resolves_to_nothing_fails_each_use_in_one_line_found_once(
    tmp_path: Path,
) -> None:
    models = Models(missing=["ghost"])
    run = session(tmp_path, models, {"gone": "ghost", "ft": "tuned"})
    expected = "checkpoint 'gone': model 'ghost': no directory and not a hub id"
    assert failure(lambda: run.case("gone", "fraud")) == expected
    assert failure(lambda: run.overall("gone")) == expected
    assert failure(lambda: run.target("gone")) == expected
    assert models.resolved.count("gone") == 1, "one attempt for the whole run"
    assert run.case("ft", "fraud").result.n == 3, "the other checkpoints run"


def test_a_base_that_resolves_to_nothing_fails_every_checkpoint(tmp_path: Path) -> None:
    run = session(tmp_path, Models(missing=["aligned"]), {"ft": "tuned", "other": "tuned2"})
    for alias in ("ft", "other"):
        assert failure(lambda a=alias: run.case(a, "fraud")).startswith("base model: ")


def test_a_served_checkpoint_that_does_not_answer_is_asked_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.models_reply = Reply(drop=True)
    closed = unreachable_url()
    models = Models()
    checkpoints = {"dropped": f"openai:m@{fake_openai.url}", "closed": f"openai:m@{closed}"}
    run = session(tmp_path, models, {**checkpoints, "ft": "tuned"}, transport=Transport(1.0, 1))
    assert len(fake_openai.listings) == 2, "the preflight's request and one retry"
    for _ in range(3):
        line = failure(lambda: run.case("dropped", "fraud"))
        assert failure(lambda: run.overall("closed")) == (
            f"checkpoint 'closed': {closed}#m: does not answer GET /models "
            "(APIConnectionError after 1 retry)"
        )
    assert line.startswith(f"checkpoint 'dropped': {fake_openai.url}#m: does not answer")
    assert len(fake_openai.listings) == 2, "never asked again"
    assert fake_openai.requests == [], "nothing generated"
    assert run.case("ft", "fraud").result.n == 3


def test_a_judge_that_does_not_answer_stops_every_case_before_generation(
    tmp_path: Path,
) -> None:
    url = unreachable_url()
    models = Models()
    spec = f"openai:judge@{url}"
    judge = make_judge(spec, JudgeSettings(transport=Transport(1.0, 0)))
    run = session(tmp_path, models, {"ft": "tuned"}, judge=judge, judge_spec=spec)
    expected = f"judge {spec} (--x): does not answer GET /models (APIConnectionError after 0 "
    expected += "retries)"
    assert failure(lambda: run.case("ft", "fraud")) == expected
    assert failure(lambda: run.overall("ft")) == expected
    assert all(target.asked == [] for target in models.built), "nothing generated"


def test_a_judge_failure_while_judging_is_the_judges_not_the_checkpoints(
    tmp_path: Path,
) -> None:
    judge = FailingJudge()
    run = session(tmp_path, Models(), {"ft": "tuned", "other": "tuned2"}, judge=judge)
    expected = "judge marker (--x): the judge's server went away"
    assert failure(lambda: run.case("ft", "fraud")) == expected
    assert failure(lambda: run.case("other", "fraud")) == expected
    assert judge.calls == 1


def test_faults_keep_the_first_reason_and_let_other_subjects_faults_through() -> None:
    faults = Faults()
    outer, inner = faults.guard("checkpoint 'a'"), faults.guard("judge")
    with pytest.raises(UnavailableError, match=r"^judge: gone$"), outer, inner:
        raise JudgeError("gone")
    faults.check("checkpoint 'a'")  # the judge's fault is not the checkpoint's
    faults.record("judge", "a later reason")
    with pytest.raises(UnavailableError, match=r"^judge: gone$"):
        faults.check("judge")
