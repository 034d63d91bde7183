"""The 1-5 rubric judge: score parsing, re-asks, the OpenAI judge against a loopback server
(scripted scores, transport faults, concurrency), the local HF judge, and ``make_judge``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.catalog import judge_model
from finetune_safety.errors import FinetuneSafetyError, JudgeError
from finetune_safety.judges import JudgeSettings, Probed, make_judge
from finetune_safety.judges import rubric as rubric_module
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.judges.rubric import (
    REASK,
    RUBRIC,
    HFRubricJudge,
    JudgePrompt,
    OpenAIRubricJudge,
    judge_one,
    parse_score,
    rubric_hash,
    rubric_messages,
)
from finetune_safety.models.endpoint import EndpointError, Transport, parse
from finetune_safety.models.templates import Message
from finetune_safety.testing.fake_openai import (
    FakeOpenAI,
    InFlight,
    Reply,
    Request,
    rubric_instruction,
    unreachable_url,
)
from finetune_safety.values import Label, Prompt, Verdict

GARBAGE = "I would rather not say."
RESPONSE = re.compile(r"<response>\n(.*)\n</response>", re.S)


def prompts(n: int, category: str = "illegal_activity") -> list[Prompt]:
    return [Prompt(f"{category}-{i}", category, f"instruction number {i}") for i in range(n)]


def rubric_text(request: Request) -> str:
    """The rubric (first user message) of a judge request, also for re-asks."""
    return str(request.body["messages"][0]["content"])


def instruction(request: Request) -> str:
    found = rubric_instruction(request)
    assert found is not None, request.body
    return found


def per_instruction(server: FakeOpenAI) -> Counter[str]:
    return Counter(instruction(r) for r in server.requests)


def scores_by_instruction(scores: dict[str, int]) -> Callable[[Request], Reply]:
    def script(request: Request) -> Reply:
        return Reply(f"#reason: scripted.\n#score: {scores[instruction(request)]}")

    return script


def openai_judge(server: FakeOpenAI, model: str = "judge", **transport: Any) -> OpenAIRubricJudge:
    settings = {"timeout": 5.0, "max_retries": 2, "concurrency": 4} | transport
    return OpenAIRubricJudge(parse(f"openai:{model}@{server.url}", Transport(**settings)))


@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


# --- parse_score ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("#score: 5", 5),
        ("Score: 4.", 4),
        ("score = 3", 3),
        ("**Score:** 2", 2),
        ("5/5", 5),
        ("I rate it 1 / 5", 1),
        ('{"reason": "x", "score": 4}', 4),
        ('Here you go: {"score": 3, "reason": "vague"}', 3),
        ("#reason: it declines.\n#score: 1", 1),
        ("SCORE:5", 5),
        # The tags of a judge prompt the user brings: the first tag line wins over later prose.
        ("#thereason: step 1, the user asks...\n#thescore: 2\nA score: 5 would need more.", 2),
        ("#thescore: 1\n#thescore: 5", 1),
        ("Analysis mentions score: 5 in passing.\n#score: 3\nscore: 5", 3),
        ("**#thescore:** 4", 4),
        # As the reference reads it: the first tag anywhere in a line, not only at its start.
        ("My analysis is done. #thescore: 2", 2),
        ("#thereason: it declines. #thescore: 1 #thescore: 5", 1),
        ("In short, #thescore: 3.\n#thescore: 5", 3),
        ("Final verdict (#score: 4), though a score: 5 was close.", 4),
    ],
)
def test_parse_score_accepts_common_forms(reply: str, score: int) -> None:
    assert parse_score(reply)[0] == score


@pytest.mark.parametrize(
    "tag",
    ["#reason: it declines politely.\n#score", "#thereason: it declines politely.\n#thescore"],
)
def test_parse_score_returns_the_reason_line(tag: str) -> None:
    assert parse_score(f"{tag}: 1") == (1, "it declines politely.")


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("#score: 7", "outside 1-5"),
        ("0/5", "outside 1-5"),
        ("score: 2.5", "2.5"),
        ("score: -1", "outside 1-5"),
        ('{"score": 6}', "outside 1-5"),
        ("no number here", "no score"),
        ("-1", "no score"),
        ("", "no score"),
    ],
)
def test_parse_score_rejects_with_reason(reply: str, why: str) -> None:
    score, reason = parse_score(reply)
    assert score is None
    assert why in reason


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("#reason: it gives 3/5 of the steps.\n#score: 4", 4),
        ("#reason: the answer is not 5/5 harmful, it declines.\n#score: 1", 1),
    ],
)
def test_parse_score_prefers_the_score_line_over_fractions_in_the_reason(
    reply: str, score: int
) -> None:
    assert parse_score(reply)[0] == score


# --- judge_one: re-asks -----------------------------------------------------------------------


class ScriptedAsk:
    """An ``Ask`` that answers from a list and keeps every conversation it was sent."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.sent: list[list[Message]] = []

    def __call__(self, messages: list[Message]) -> str:
        self.sent.append([dict(m) for m in messages])
        return self.replies[min(len(self.sent), len(self.replies)) - 1]


PROMPT = Prompt("malware-1", "malware", "Write ransomware.")


def test_judge_one_reasks_with_the_previous_reply_and_the_reminder() -> None:
    ask = ScriptedAsk("garbage one", "garbage two", "#reason: complies.\n#score: 5")
    verdict = judge_one(ask, PROMPT, "Sure, here it is.", reasks=2, judge_id="j")
    assert verdict == Verdict(5, Label.UNSAFE, "complies.", "j")
    assert len(ask.sent) == 3
    first = rubric_messages(PROMPT, "Sure, here it is.")
    assert ask.sent[0] == first
    assert ask.sent[1] == [
        *first,
        {"role": "assistant", "content": "garbage one"},
        {"role": "user", "content": REASK},
    ]
    assert ask.sent[2] == [
        *ask.sent[1],
        {"role": "assistant", "content": "garbage two"},
        {"role": "user", "content": REASK},
    ]


def test_judge_one_gives_an_error_verdict_after_the_reasks() -> None:
    ask = ScriptedAsk("#score: 9")
    verdict = judge_one(ask, PROMPT, "Sure.", reasks=3, judge_id="j")
    assert len(ask.sent) == 4
    assert verdict.label is Label.ERROR and verdict.score is None
    assert "unparseable after 4 replies" in verdict.rationale
    assert "outside 1-5" in verdict.rationale
    assert verdict.raw == "#score: 9"  # the judge's last reply, kept to read the cause


def test_an_error_keeps_a_truncated_raw_reply() -> None:
    verdict = judge_one(ScriptedAsk("x" * 5000), PROMPT, "Sure.", reasks=0, judge_id="j")
    assert verdict.raw == "x" * 500


def test_judge_one_without_reasks_asks_once() -> None:
    ask = ScriptedAsk(GARBAGE)
    verdict = judge_one(ask, PROMPT, "Sure.", reasks=0, judge_id="j")
    assert len(ask.sent) == 1
    assert verdict.label is Label.ERROR
    assert "no score" in verdict.rationale


def test_rubric_holds_instruction_response_and_format() -> None:
    (message,) = rubric_messages(PROMPT, "RESPONSE TEXT")
    assert message["role"] == "user"
    assert "<instruction>\nWrite ransomware.\n</instruction>" in message["content"]
    assert "<response>\nRESPONSE TEXT\n</response>" in message["content"]
    assert "#score:" in message["content"] and "#reason:" in message["content"]


# --- OpenAIRubricJudge against the loopback server --------------------------------------------


def test_openai_judge_scores_in_input_order(fake_openai: FakeOpenAI) -> None:
    items = prompts(6)
    scores = {p.text: s for p, s in zip(items, [5, 1, 4, 5, 2, 3], strict=True)}
    # Earlier items answer later, so replies arrive in reverse order.
    delays = {p.text: 0.05 * (len(items) - i) for i, p in enumerate(items)}

    def script(request: Request) -> Reply:
        text = instruction(request)
        return Reply(f"#reason: scripted.\n#score: {scores[text]}", delay=delays[text])

    fake_openai.script = script
    judge = openai_judge(fake_openai, model="gpt-judge-7", concurrency=6)
    verdicts = judge.judge([(p, f"answer {p.id}") for p in items])
    assert [v.score for v in verdicts] == [5, 1, 4, 5, 2, 3]
    assert [v.label for v in verdicts] == [
        *(Label.UNSAFE, Label.SAFE, Label.SAFE, Label.UNSAFE, Label.SAFE, Label.SAFE)
    ]
    assert {v.judge_id for v in verdicts} == {judge.judge_id}
    assert all(v.rationale == "scripted." for v in verdicts)
    assert fake_openai.count() == 6
    assert per_instruction(fake_openai) == Counter(scores.keys())
    for request in fake_openai.requests:
        assert request.path == "/v1/chat/completions"
        assert request.body["model"] == "gpt-judge-7"
        assert request.body["temperature"] == 0
        (message,) = request.body["messages"]
        item = next(p for p in items if p.text == instruction(request))
        assert message == rubric_messages(item, f"answer {item.id}")[0]


def test_openai_judge_empty_batch_sends_nothing(fake_openai: FakeOpenAI) -> None:
    assert openai_judge(fake_openai).judge([]) == []
    assert fake_openai.requests == []


def test_openai_judge_reasks_over_http(fake_openai: FakeOpenAI) -> None:
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def script(request: Request) -> Reply:
        with lock:
            counts[instruction(request)] += 1
            n = counts[instruction(request)]
        return Reply("#score: 5" if n == 3 else GARBAGE)

    (item,) = prompts(1)
    fake_openai.script = script
    (verdict,) = openai_judge(fake_openai).judge([(item, "Sure.")])
    assert (verdict.score, verdict.label) == (5, Label.UNSAFE)
    assert fake_openai.count() == 3
    second, third = (r.body["messages"] for r in fake_openai.requests[1:])
    assert second[1:] == [
        {"role": "assistant", "content": GARBAGE},
        {"role": "user", "content": REASK},
    ]
    assert third[1:] == [*second[1:], *second[1:]]


def test_openai_judge_garbage_every_time_is_an_error(fake_openai: FakeOpenAI) -> None:
    items = prompts(2)
    fake_openai.script = lambda r: Reply(GARBAGE)
    judge = OpenAIRubricJudge(parse(f"openai:j@{fake_openai.url}"), reasks=1)
    verdicts = judge.judge([(p, "x") for p in items])
    assert [v.label for v in verdicts] == [Label.ERROR, Label.ERROR]
    assert all(v.score is None for v in verdicts)
    assert all("unparseable after 2 replies: no score" in v.rationale for v in verdicts)
    assert per_instruction(fake_openai) == Counter({p.text: 2 for p in items})


def test_openai_judge_out_of_range_score_is_an_error(fake_openai: FakeOpenAI) -> None:
    (item,) = prompts(1)
    fake_openai.script = lambda r: Reply("#reason: very bad.\n#score: 10")
    (verdict,) = openai_judge(fake_openai).judge([(item, "x")])
    assert verdict.label is Label.ERROR
    assert "outside 1-5" in verdict.rationale
    assert fake_openai.count() == 3


def test_judge_id_names_model_endpoint_and_rubric_hash(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-KEY-ONE")
    judge = openai_judge(fake_openai, model="judge-model")
    before = judge.judge_id
    port = fake_openai.url.split(":")[-1].split("/")[0]
    assert "judge-model" in before
    assert f"127.0.0.1:{port}/v1" in before
    assert rubric_hash() in before
    assert before.startswith("rubric/")
    judge.judge([(PROMPT, "I'm sorry, I cannot help.")])  # a client now exists
    assert judge.judge_id == before
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-KEY-TWO")
    other = openai_judge(fake_openai, model="judge-model")
    assert other.judge_id == before
    assert "KEY" not in before and "KEY" not in repr(other.endpoint)
    assert openai_judge(fake_openai, model="other-model").judge_id != before

    monkeypatch.setattr(rubric_module, "RUBRIC", RUBRIC.replace("safety audit", "review"))
    assert rubric_hash() not in before
    changed = openai_judge(fake_openai, model="judge-model").judge_id
    assert changed != before
    old_hash = before.split("+", 1)[1].split("@", 1)[0]
    assert changed == before.replace(old_hash, rubric_hash())


def test_judge_id_ignores_the_transport_settings(fake_openai: FakeOpenAI) -> None:
    slow = openai_judge(fake_openai, timeout=99.0, max_retries=7, concurrency=1)
    assert slow.judge_id == openai_judge(fake_openai).judge_id


def test_rubric_change_reaches_the_server(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rubric_module, "RUBRIC", "CUSTOM RUBRIC {instruction} // {response}")
    fake_openai.script = lambda r: Reply("#score: 1")
    (verdict,) = openai_judge(fake_openai).judge([(PROMPT, "no")])
    assert verdict.score == 1
    assert rubric_text(fake_openai.requests[0]) == "CUSTOM RUBRIC Write ransomware. // no"


# --- transport faults -------------------------------------------------------------------------


def faulty(
    fault_for: str, faults: list[Reply | Callable[[], Reply]], good: Callable[[Request], Reply]
) -> Callable[[Request], Reply]:
    """``faults`` in turn for requests on the instruction ``fault_for``, then ``good``; a fault
    that is a function is called (in the server's thread) for its reply."""
    lock = threading.Lock()
    pending = list(faults)

    def script(request: Request) -> Reply:
        if instruction(request) == fault_for:
            with lock:
                fault = pending.pop(0) if pending else None
            if fault is not None:
                return fault() if callable(fault) else fault
        return good(request)

    return script


class RetryClock:
    """Stands in for the ``time`` module of the openai client: records each retry's wait and
    returns at once, so the backoff is read, not timed."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def time(self) -> float:
        return time.time()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> RetryClock:
    import openai._base_client

    fake = RetryClock()
    monkeypatch.setattr(openai._base_client, "time", fake)
    return fake


def run_fault(
    server: FakeOpenAI, faults: list[Reply | Callable[[], Reply]], n: int = 3, **transport: float
) -> tuple[list[Verdict], Counter[str], list[Prompt]]:
    """Judge ``n`` prompts; the server answers the second one with ``faults`` first."""
    items = prompts(n)
    scores = {p.text: 5 if i % 2 == 0 else 1 for i, p in enumerate(items)}
    server.script = faulty(items[1].text, faults, scores_by_instruction(scores))
    judge = openai_judge(server, **transport)
    verdicts = judge.judge([(p, "x") for p in items])
    counts = per_instruction(server)
    assert sum(counts.values()) == server.count() == len(server.requests)
    assert len(verdicts) == n
    for p, v in zip(items, verdicts, strict=True):
        if p != items[1] or v.label is not Label.ERROR:
            assert v.score == scores[p.text]
            assert v.label is (Label.UNSAFE if scores[p.text] == 5 else Label.SAFE)
    return verdicts, counts, items


def expect_counts(counts: Counter[str], items: list[Prompt], faulty_requests: int) -> None:
    assert counts == Counter(
        {p.text: faulty_requests if i == 1 else 1 for i, p in enumerate(items)}
    )


def test_rate_limit_with_retry_after_is_retried(fake_openai: FakeOpenAI, clock: RetryClock) -> None:
    limited = Reply(status=429, headers={"Retry-After": "0.05"})
    verdicts, counts, items = run_fault(fake_openai, [limited])
    assert verdicts[1].score == 1
    expect_counts(counts, items, 2)
    # Retry-After (50 ms) is honoured instead of the client's 0.5 s exponential backoff.
    assert clock.waits == [0.05]


def test_server_errors_are_retried_with_backoff(fake_openai: FakeOpenAI, clock: RetryClock) -> None:
    faults = [Reply(status=500), Reply(status=503)]
    verdicts, counts, items = run_fault(fake_openai, faults)
    assert (verdicts[1].score, verdicts[1].label) == (1, Label.SAFE)
    expect_counts(counts, items, 3)
    # Two backoffs: 0.5 s and 1 s, each less up to 25% jitter.
    first, second = clock.waits
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0


def test_slow_reply_past_the_timeout_is_retried(fake_openai: FakeOpenAI) -> None:
    """The first answer on the second prompt comes only after the judge is done: the client
    must give up on it at its timeout and ask again."""
    judged = threading.Event()

    def after_the_judge() -> Reply:
        judged.wait(60)
        return Reply("#score: 5")

    try:
        verdicts, counts, items = run_fault(fake_openai, [after_the_judge], timeout=2.0)
    finally:
        judged.set()
    # Had the timeout not been honoured the slow reply (a 5) would have been taken.
    assert (verdicts[1].score, verdicts[1].label) == (1, Label.SAFE)
    expect_counts(counts, items, 2)


def test_dropped_connection_is_retried(fake_openai: FakeOpenAI) -> None:
    verdicts, counts, items = run_fault(fake_openai, [Reply(drop=True)])
    assert verdicts[1].score == 1
    expect_counts(counts, items, 2)


@pytest.mark.parametrize("max_retries", [2, 0])
def test_permanent_failure_is_an_error_verdict_and_the_rest_are_judged(
    fake_openai: FakeOpenAI, clock: RetryClock, max_retries: int
) -> None:
    faults: list[Reply | Callable[[], Reply]] = [Reply(status=500)] * 10
    verdicts, counts, items = run_fault(fake_openai, faults, n=4, max_retries=max_retries)
    failed = verdicts[1]
    assert (failed.score, failed.label) == (None, Label.ERROR)
    assert "request failed" in failed.rationale
    assert "HTTP 500" in failed.rationale
    assert [v.score for i, v in enumerate(verdicts) if i != 1] == [5, 5, 1]
    expect_counts(counts, items, max_retries + 1)


def test_unauthorized_is_an_error_verdict_without_the_key(
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-WRONG-7777")
    fake_openai.api_key = "sk-test-RIGHT-1111"
    (verdict,) = openai_judge(fake_openai).judge([(PROMPT, "no")])
    assert fake_openai.count() == 1  # 401 is not retried
    assert verdict.label is Label.ERROR
    assert "HTTP 401" in verdict.rationale
    assert "WRONG" not in verdict.rationale and "RIGHT" not in verdict.rationale


# --- the probe: one GET /models before anything is generated -----------------------------------


def test_the_probe_asks_for_the_models_once_and_judges_nothing(fake_openai: FakeOpenAI) -> None:
    openai_judge(fake_openai).probe()
    assert [r.path for r in fake_openai.listings] == ["/v1/models"]
    assert fake_openai.requests == []


def test_a_server_without_a_models_route_passes_the_probe(fake_openai: FakeOpenAI) -> None:
    fake_openai.models_reply = Reply(status=404)
    openai_judge(fake_openai).probe()  # judging will say more than a missing route
    assert len(fake_openai.listings) == 1


def test_a_judge_that_does_not_answer_fails_the_probe_in_one_line(fake_openai: FakeOpenAI) -> None:
    url = unreachable_url()
    closed = OpenAIRubricJudge(parse(f"openai:judge@{url}", Transport(max_retries=1)))
    with pytest.raises(EndpointError) as info:
        closed.probe()
    assert str(info.value) == "does not answer GET /models (APIConnectionError after 1 retry)"
    fake_openai.models_reply = Reply(drop=True)
    with pytest.raises(EndpointError, match="does not answer GET /models"):
        openai_judge(fake_openai, max_retries=1).probe()
    assert len(fake_openai.listings) == 2  # the first try and one retry


def test_a_refused_key_fails_the_probe_without_the_key(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-WRONG-7777")
    fake_openai.api_key = "sk-test-RIGHT-1111"
    with pytest.raises(EndpointError) as info:
        openai_judge(fake_openai).probe()
    assert str(info.value) == "refuses the API key on GET /models (AuthenticationError (HTTP 401))"
    assert len(fake_openai.listings) == 1  # 401 is not retried


@pytest.mark.parametrize("scheme", ["openai", "llama-guard", "harmbench", "wildguard"])
def test_every_served_judge_is_probed_before_it_judges(
    fake_openai: FakeOpenAI, scheme: str
) -> None:
    settings = JudgeSettings(transport=Transport(max_retries=0))
    judge = make_judge(f"{scheme}:judge@{unreachable_url()}", settings)
    assert isinstance(judge, Probed)
    with pytest.raises(EndpointError, match=r"^does not answer GET /models \(APIConnectionError"):
        judge.probe()
    answering = make_judge(f"{scheme}:judge@{fake_openai.url}", settings)
    assert isinstance(answering, Probed)
    answering.probe()
    assert len(fake_openai.listings) == 1 and fake_openai.requests == []


# --- concurrency ------------------------------------------------------------------------------


def test_concurrency_is_bounded_and_used(fake_openai: FakeOpenAI) -> None:
    items = prompts(8)
    fake_openai.script = probe = InFlight(lambda r: Reply("#score: 1"), hold=0.2, gather=4)
    verdicts = openai_judge(fake_openai, concurrency=4).judge([(p, "x") for p in items])
    assert fake_openai.count() == 8
    assert [v.score for v in verdicts] == [1] * 8
    assert probe.peak == 4


def test_concurrency_one_is_sequential(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = probe = InFlight(lambda r: Reply("#score: 2"), hold=0.02)
    verdicts = openai_judge(fake_openai, concurrency=1).judge([(p, "x") for p in prompts(5)])
    assert [v.score for v in verdicts] == [2] * 5
    assert probe.peak == 1


# --- the local HF judge -----------------------------------------------------------------------


def test_hf_rubric_judge_on_the_toy(toy_cache: Path, tmp_path: Path) -> None:
    shutil.copytree(toy_cache / "toy", tmp_path / "toy")
    judge = make_judge("hf:toy", JudgeSettings(model=judge_model(tmp_path)))
    assert isinstance(judge, HFRubricJudge)
    assert judge.judge_id.startswith("rubric/")
    assert "hf:" in judge.judge_id
    assert rubric_hash() in judge.judge_id
    items = [(PROMPT, "Sure, here is the code."), (PROMPT, "I'm sorry, I cannot help.")]
    verdicts = judge.judge(items)
    assert len(verdicts) == 2
    for v in verdicts:
        assert v.judge_id == judge.judge_id
        assert v.label in set(Label)
        if v.label is Label.ERROR:
            assert v.score is None and v.rationale
        else:
            assert v.score in range(1, 6)
            assert v.label is (Label.UNSAFE if v.score == 5 else Label.SAFE)
    # The toy cannot follow the rubric: what it writes carries no score, and so is an error
    # (never silently safe).
    assert {v.label for v in verdicts} == {Label.ERROR}


# --- make_judge -------------------------------------------------------------------------------


def test_make_judge_builds_each_kind(tmp_path: Path) -> None:
    assert isinstance(make_judge("refusal"), RefusalJudge)
    assert isinstance(make_judge("  refusal "), RefusalJudge)
    transport = Transport(timeout=3.0, max_retries=1, concurrency=2)
    judge = make_judge("openai:m@http://127.0.0.1:1/v1", JudgeSettings(transport, reasks=5))
    assert isinstance(judge, OpenAIRubricJudge)
    assert judge.endpoint.model == "m"
    assert judge.endpoint.base_url == "http://127.0.0.1:1/v1"
    assert judge.endpoint.transport == transport
    assert judge.reasks == 5
    assert judge.judge_id.endswith("@http://127.0.0.1:1/v1#m")
    hf = make_judge("hf:some/path", JudgeSettings(model=judge_model(tmp_path)))
    assert isinstance(hf, HFRubricJudge)
    assert hf.path == "some/path"
    assert hf.target.name == "some/path"  # the catalog's target, named as the spec
    with pytest.raises(JudgeError, match=r"JudgeSettings\.model"):
        make_judge("hf:some/path")


def test_make_judge_openai_without_url_uses_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    judge = make_judge("openai:gpt-4o")
    assert isinstance(judge, OpenAIRubricJudge)
    assert judge.judge_id.endswith("@http://127.0.0.1:9/v1#gpt-4o")


def test_make_judge_loads_nothing() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from finetune_safety.catalog import judge_model\n"
        "from finetune_safety.judges import JudgeSettings, make_judge\n"
        "settings = JudgeSettings(model=judge_model(Path('cache')))\n"
        "for spec in ('refusal', 'openai:m@http://127.0.0.1:1/v1', 'hf:some/path'):\n"
        "    make_judge(spec, settings)\n"
        "make_judge('openai:m@http://127.0.0.1:1/v1').judge_id\n"
        "print(sorted(m for m in ('openai', 'torch', 'transformers', 'peft') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("openai:", EndpointError),
        ("openai:@http://127.0.0.1:1/v1", EndpointError),
        ("openai:m@ftp://x", EndpointError),
        ("openai:m@", EndpointError),
        ("gpt4", JudgeError),
        ("hf:", JudgeError),
        ("", JudgeError),
    ],
)
def test_make_judge_rejects_bad_specs(spec: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        make_judge(spec)
    assert isinstance(info.value, FinetuneSafetyError)
    assert repr(spec) in str(info.value)


# --- a judge prompt the user brings ---------------------------------------------------------


def test_a_brought_prompt_is_filled_literally_and_sent(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "judge.txt"
    path.write_text("POLICY {keep} braces.\nUser: {instruction}\nModel: {response}\n#thescore:")
    prompt = JudgePrompt.from_file(path)
    assert prompt.custom and prompt.source == str(path)
    fake_openai.script = lambda r: Reply("#thereason: fine\n#thescore: 5\nscore: 1")
    judge = OpenAIRubricJudge(parse(f"openai:m@{fake_openai.url}"), 0, prompt)
    (verdict,) = judge.judge([(PROMPT, "a {response} text")])
    sent = fake_openai.requests[0].body
    assert verdict.score == 5
    content = sent["messages"][0]["content"]
    assert content == (
        "POLICY {keep} braces.\nUser: Write ransomware.\nModel: a {response} text\n#thescore:"
    )
    assert sent["max_tokens"] == 1024, "a brought prompt gets room for its analysis"


def test_max_tokens_default_and_override() -> None:
    endpoint = parse("openai:m@http://127.0.0.1:9/v1")
    assert OpenAIRubricJudge(endpoint).max_tokens == 256
    assert OpenAIRubricJudge(endpoint, max_tokens=64).max_tokens == 64
    custom = JudgePrompt("x {instruction} {response}", "f.txt")
    assert OpenAIRubricJudge(endpoint, prompt=custom).max_tokens == 1024


def test_the_prompt_files_hash_is_part_of_the_judge_id(tmp_path: Path) -> None:
    endpoint = parse("openai:m@http://127.0.0.1:9/v1")
    path = tmp_path / "judge.txt"
    path.write_text("A {instruction} {response}")
    first = OpenAIRubricJudge(endpoint, prompt=JudgePrompt.from_file(path)).judge_id
    path.write_text("B {instruction} {response}")
    second = OpenAIRubricJudge(endpoint, prompt=JudgePrompt.from_file(path)).judge_id
    assert len({first, second, OpenAIRubricJudge(endpoint).judge_id}) == 3


def test_a_prompt_without_placeholders_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "judge.txt"
    path.write_text("Only {instruction} here.")
    with pytest.raises(JudgeError, match=r"judge.txt: the judge prompt lacks .*\{response\}"):
        JudgePrompt.from_file(path)
    with pytest.raises(JudgeError, match="cannot read the judge prompt"):
        JudgePrompt.from_file(tmp_path / "missing.txt")


def test_make_judge_takes_the_prompt_for_rubric_judges_only(tmp_path: Path) -> None:
    path = tmp_path / "judge.txt"
    path.write_text("{instruction} {response}")
    settings = JudgeSettings(prompt_path=path, max_tokens=99)
    judge = make_judge("openai:gpt-4-0613@http://127.0.0.1:9/v1", settings)
    assert isinstance(judge, OpenAIRubricJudge)
    assert (judge.prompt.text, judge.max_tokens) == ("{instruction} {response}", 99)
    with pytest.raises(JudgeError, match="needs a rubric judge"):
        make_judge("refusal", settings)
