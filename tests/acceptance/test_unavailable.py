"""Models and judges a run cannot use (issue 23, item 3), as a user meets them: a served
checkpoint or judge that does not answer, a hub id that resolves to nothing, a checkpoint whose
save was cut short. Each is found once per session, and each test that needs it fails with one
line naming the checkpoint alias or the judge's option: no traceback, never a pass or a skip.
What the files show before any test (a broken checkpoint directory) stops the run, exit 4.

The models that do answer are served by a loopback fake (no toy build, nothing to download), so
these runs take seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from harness import Dist, Project, counts, outcomes, output

from finetune_safety.testing.fake_openai import FakeOpenAI, Reply, unreachable_url

TABLE = "[tool.finetune_safety]\nmax_new_tokens = 16\nmax_retries = 1\n"
#: The gate's tests for one checkpoint on the two categories of the harness's benchmark.
PER_CHECKPOINT = 7


@pytest.fixture
def dropping() -> Iterator[FakeOpenAI]:
    """A server that takes each connection and drops it unanswered: it counts the probes."""
    with FakeOpenAI() as server:
        server.models_reply = Reply(drop=True)
        yield server


def failed_lines(result: pytest.RunResult) -> list[str]:
    """The report of each failed test: the line under its header in the FAILURES section
    (after the worker's line, over xdist)."""
    lines = [line for line in result.outlines if not line.startswith("[gw")]
    return [lines[i + 1] for i, line in enumerate(lines) if re.fullmatch(r"_+ test_\S+ _+", line)]


def no_traceback(result: pytest.RunResult) -> None:
    text = output(result)
    assert "Traceback" not in text and not re.search(r"^E ", text, re.M), text
    assert not any(line.startswith(">") for line in result.outlines), text


def served(project: Project, server: FakeOpenAI, *args: str, dist: Dist) -> pytest.RunResult:
    """A run whose base is served by ``server`` (which answers every prompt with a refusal)."""
    project.pyproject(TABLE)
    project.options = ("-v", "--safety-base", f"openai:base@{server.url}")
    return project.run(*args, *dist.args)


def test_served_checkpoints_that_do_not_answer_fail_their_tests_in_one_line_asked_once(
    bare_project: Project, fake_openai: FakeOpenAI, dropping: FakeOpenAI, dist: Dist
) -> None:
    closed = unreachable_url()
    result = served(
        bare_project,
        fake_openai,
        *("--safety-checkpoint", f"ok=openai:ok@{fake_openai.url}"),
        *("--safety-checkpoint", f"closed=openai:m@{closed}"),
        *("--safety-checkpoint", f"dropped=openai:m@{dropping.url}"),
        dist=dist,
    )
    no_traceback(result)
    assert result.ret == 1
    found = outcomes(result)
    for alias in ("closed", "dropped"):
        mine = {t: o for t, o in found.items() if f"[{alias}" in t}
        assert list(mine.values()) == ["FAILED"] * PER_CHECKPOINT, mine
    assert {o for t, o in found.items() if "[ok" in t} <= {"PASSED", "SKIPPED"}  # no snapshots
    assert counts(result) == {"failed": 2 * PER_CHECKPOINT, "passed": 5, "skipped": 2}
    why = "does not answer GET /models (APIConnectionError after 1 retry)"
    assert sorted(failed_lines(result)) == sorted(
        [f"checkpoint 'closed': {closed}#m: {why}"] * PER_CHECKPOINT
        + [f"checkpoint 'dropped': {dropping.url}#m: {why}"] * PER_CHECKPOINT
    )
    # Asked once per test process (a request and its retry), not once per test.
    assert 2 <= len(dropping.listings) <= 2 * max(1, dist.workers)
    assert dropping.requests == []


@pytest.mark.parametrize("origin", ["option", "table"])
def test_a_judge_that_does_not_answer_fails_every_test_naming_it_before_any_generation(
    bare_project: Project, fake_openai: FakeOpenAI, dist: Dist, origin: str
) -> None:
    judge = f"openai:judge@{unreachable_url()}"
    checkpoint = ("--safety-checkpoint", f"ft=openai:ft@{fake_openai.url}")
    if origin == "option":
        result = served(bare_project, fake_openai, *checkpoint, "--safety-judge", judge, dist=dist)
        named = f"judge {judge} (--safety-judge)"
    else:
        bare_project.options = ("-v", "--safety-base", f"openai:base@{fake_openai.url}")
        bare_project.pyproject(f'{TABLE}judge = "{judge}"\n')
        result = bare_project.run(*checkpoint, *dist.args)
        named = f"judge {judge} (tool.finetune_safety.judge)"
    no_traceback(result)
    assert counts(result) == {"failed": PER_CHECKPOINT}
    why = "does not answer GET /models (APIConnectionError after 1 retry)"
    assert failed_lines(result) == [f"{named}: {why}"] * PER_CHECKPOINT
    assert fake_openai.requests == [], "nothing was generated for a judge that cannot judge"


def test_a_hub_id_that_resolves_to_nothing_is_tried_once_per_session(
    bare_project: Project,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Online (HF_HUB_OFFLINE unset), against a hub that knows no model: however many tests
    need the checkpoint, the hub is asked what one test asks."""
    with FakeOpenAI() as hub:
        hub.models_reply = Reply(status=404)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url.removesuffix("/v1"))
        ghost = ("--safety-checkpoint", "ghost=someorg/no-such-model")
        one = served(bare_project, fake_openai, *ghost, "-k", "rate and malware", dist=Dist(0))
        asked_by_one = len(hub.listings)
        every = served(bare_project, fake_openai, *ghost, dist=Dist(0))
    assert asked_by_one >= 1
    assert len(hub.listings) == 2 * asked_by_one
    for result in (one, every):
        no_traceback(result)
    assert counts(one) == {"failed": 1, "deselected": PER_CHECKPOINT - 1}
    assert counts(every) == {"failed": PER_CHECKPOINT}
    lines = set(failed_lines(every))
    (line,) = lines
    assert line.startswith(
        "checkpoint 'ghost': model 'someorg/no-such-model' is neither a local directory nor a "
        "reachable hub id: "
    )


def test_a_checkpoint_whose_save_was_cut_short_stops_the_run_before_any_test(
    bare_project: Project, dist: Dist
) -> None:
    cut = bare_project.path / "out" / "ft"  # the weights written, the tokenizer not yet
    cut.mkdir(parents=True)
    (cut / "config.json").write_text('{"model_type": "llama"}')
    (cut / "model.safetensors").write_bytes(b"weights")
    bare_project.pyproject(f'{TABLE}[tool.finetune_safety.checkpoints]\nft = "out/ft"\n')
    result = bare_project.run(*dist.args)
    assert result.ret == 4
    no_traceback(result)
    (line,) = [x for x in output(result).splitlines() if "finetune-safety:" in x]
    assert (  # over xdist, the controller's pytest.exit wraps it in "! ... !"
        f"finetune-safety: tool.finetune_safety.checkpoints.ft: {cut}: holds no tokenizer (none of "
        "tokenizer.json, tokenizer_config.json, tokenizer.model, vocab.json, vocab.txt, "
        "spiece.model): a save that stopped before the tokenizer was written? Save it beside the "
        "weights, or train again"
    ) in line
    assert "passed" not in output(result) and "failed" not in output(result)


def test_a_test_of_your_own_meeting_an_unavailable_checkpoint_fails_in_one_line(
    bare_project: Project, fake_openai: FakeOpenAI
) -> None:
    closed = unreachable_url()
    (bare_project.path / "safety_tests" / "test_mine.py").write_text(
        "def test_mine(safety_session):\n    safety_session.overall('closed')\n"
    )
    ckpt = ("--safety-checkpoint", f"closed=openai:m@{closed}")
    result = served(bare_project, fake_openai, *ckpt, "-k", "test_mine", dist=Dist(0))
    no_traceback(result)
    assert counts(result) == {"failed": 1, "deselected": PER_CHECKPOINT}
    assert failed_lines(result) == [
        f"checkpoint 'closed': {closed}#m: does not answer GET /models (APIConnectionError after "
        "1 retry)"
    ]
