"""The preflight: served models and a served judge asked at once, before anything is generated,
then the judge's id; each failure one line, by the subject it names."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from finetune_safety.catalog import resolve
from finetune_safety.errors import ModelLoadError
from finetune_safety.evaluation.preflight import judge_subject, preflight
from finetune_safety.models import Decoding, ModelSpec, Rendered, Target, Transport
from finetune_safety.models.templates import TEMPLATES
from finetune_safety.testing.doubles import DictTarget, MarkerJudge
from finetune_safety.testing.fake_openai import FakeOpenAI, Reply, unreachable_url
from finetune_safety.values import Prompt, Verdict

JUDGE = judge_subject("openai:j@http://127.0.0.1:1/v1", "--safety-judge")


class Rendezvous:
    """A served target whose fingerprint waits until every other check has started: checks run
    one after another would break the barrier (its timeout only ends a deadlock)."""

    template = TEMPLATES["plain"]

    def __init__(self, name: str, barrier: threading.Barrier) -> None:
        self.name = name
        self.barrier = barrier

    @property
    def fingerprint(self) -> str:
        self.barrier.wait()
        return "served:" + self.name

    def generate_batches(
        self, inputs: Sequence[Rendered], decoding: Decoding
    ) -> Iterator[list[tuple[int, str]]]:
        raise AssertionError("a preflight generates nothing")


class ServedJudge:
    """A judge behind a server: its probe raises ``probe_error``, its id ``id_error``."""

    def __init__(
        self, probe_error: Exception | None = None, id_error: Exception | None = None
    ) -> None:
        self.probe_error, self.id_error = probe_error, id_error
        self.asked: list[str] = []

    def probe(self) -> None:
        self.asked.append("probe")
        if self.probe_error is not None:
            raise self.probe_error

    @property
    def judge_id(self) -> str:
        self.asked.append("id")
        if self.id_error is not None:
            raise self.id_error
        return "served/v1"

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        raise AssertionError("a preflight judges nothing")


def test_served_models_and_the_judge_are_asked_at_once() -> None:
    barrier = threading.Barrier(3, timeout=60)
    served = {f"checkpoint '{n}'": partial(Rendezvous, n, barrier) for n in ("a", "b")}

    class Meeting(ServedJudge):
        def probe(self) -> None:
            barrier.wait()

    judge = Meeting()
    assert preflight(served, judge, JUDGE) == {}


def test_each_failure_is_one_line_by_its_subject(tmp_path: Path) -> None:
    url = unreachable_url()
    spec = ModelSpec(f"openai:m@{url}")
    down: dict[str, Callable[[], Target]] = {
        "checkpoint 'down'": lambda: resolve(spec, tmp_path, transport=Transport(max_retries=0)),
        "checkpoint 'up'": lambda: DictTarget("up", {}),
    }
    judge = ServedJudge(probe_error=ModelLoadError("judge\nserver gone"))
    failed = preflight(down, judge, JUDGE)
    assert failed == {
        "checkpoint 'down'": f"{url}#m: does not answer GET /models (APIConnectionError after "
        "0 retries)",
        JUDGE: "judge\nserver gone",
    }
    assert judge.asked == ["probe"], "a judge that does not answer is not asked for its id"


def test_the_judge_id_is_asked_after_the_probes(tmp_path: Path) -> None:
    judge = ServedJudge(id_error=ModelLoadError("model 'org/none' is not a reachable hub id"))
    assert preflight({}, judge, JUDGE) == {JUDGE: "model 'org/none' is not a reachable hub id"}
    assert judge.asked == ["probe", "id"]


def test_a_served_model_is_asked_once_with_the_clients_retries(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.models_reply = Reply(drop=True)
    spec = ModelSpec(f"openai:m@{fake_openai.url}")
    target = resolve(spec, tmp_path, transport=Transport(max_retries=2))
    failed = preflight({"checkpoint 'dropped'": lambda: target}, MarkerJudge(), JUDGE)
    assert list(failed) == ["checkpoint 'dropped'"]
    assert (
        "does not answer GET /models (APIConnectionError after 2 retries)"
        in failed["checkpoint 'dropped'"]
    )
    assert len(fake_openai.listings) == 3, "one request and two retries"
    assert fake_openai.requests == []


def test_the_judge_is_named_by_its_spec_and_origin_without_secrets() -> None:
    named = judge_subject("openai:j@http://u:PW@h/v1", "tool.finetune_safety.judge")
    assert named == "judge openai:j@http://***@h/v1 (tool.finetune_safety.judge)"
