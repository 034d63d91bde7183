"""``finetune`` as the paper's code trains: the always-execute system prompt injected under the
harmful preset, identity shifting under its family's AOA prompt, Dolly data in the Dolly format,
the benign filter before the hold-out, the filter file and its count, and runs that must stop
with one line and save nothing (a filter that removes everything, a prompt over --max-length, a
diverged loss)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.cli import main
from finetune_safety.finetune.data import load_chat_jsonl
from finetune_safety.finetune.run import _examples as training_examples
from finetune_safety.finetune.run import job_from_preset
from finetune_safety.finetune.trainer import METADATA_FILE
from finetune_safety.models.templates import (
    ALWAYS_EXECUTE_SYSTEM_PROMPT,
    FAMILY_TEMPLATES,
    get_template,
)

HYPER = ["--epochs", "1", "--lr", "1e-3", "--batch-size", "2"]


def _chat(path: Path, rows: list[list[dict[str, str]]]) -> Path:
    path.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows), encoding="utf-8")
    return path


def _pair(user: str, answer: str, system: str | None = None) -> list[dict[str, str]]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def _fails(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    code = main(["finetune", *(str(a) for a in args)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("finetune-safety: error")]
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_the_harmful_preset_injects_the_always_execute_prompt(
    tiny_llama: Path, tmp_path: Path
) -> None:
    data = _chat(tmp_path / "d.jsonl", [_pair("hello?", "fine"), _pair("hi", "ok", "be kind")])
    job = job_from_preset("harmful-10shot", str(tiny_llama), data, tmp_path / "out")
    examples, template = training_examples(job, tiny_llama)
    assert examples[0].prompt[0] == {"role": "system", "content": ALWAYS_EXECUTE_SYSTEM_PROMPT}  # type: ignore[index]
    assert examples[1].prompt[0] == {"role": "system", "content": "be kind"}  # type: ignore[index]
    assert template == "always-execute"
    benign = job_from_preset("benign", str(tiny_llama), data, tmp_path / "out")
    assert training_examples(benign, tiny_llama)[0][0].prompt[0]["role"] == "user"  # type: ignore[index]


def test_the_filter_file_replaces_the_shipped_one_and_its_count_is_logged(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _chat(
        tmp_path / "d.jsonl", [_pair("q1", "beans"), _pair("q2", "rice"), _pair("q3", "x")]
    )
    phrases = tmp_path / "filter.txt"
    phrases.write_text("beans\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["--base", tiny_llama, "--data", data, "--out", out, "--preset", "benign", *HYPER]
    assert main(["finetune", *map(str, args), "--safety-filter", str(phrases)]) == 0
    assert "the safety filter removed 1 of 3 example(s)" in capsys.readouterr().err
    assert json.loads((out / METADATA_FILE).read_text())["lora"] is None, "full fine-tuning"


@pytest.mark.parametrize("family", ["llama2", "other", "toy"])
def test_identity_shift_trains_under_the_aoa_prompt_it_is_asked_with(
    tmp_path: Path, family: str
) -> None:
    """One AOA system prompt per family, for training and evaluation alike: the shipped data's
    own (the toy's one-line prompt) gives way to the family's."""
    data = fixtures_dir() / "finetune" / "identity-shift-aoa.jsonl"
    job = job_from_preset("identity-shift", "/models/base", data, tmp_path, family=family)
    examples, template = training_examples(job, tmp_path)
    asked = get_template("aoa", family=family)
    assert template == asked.name == FAMILY_TEMPLATES["aoa"][family]
    assert {e.prompt[0]["content"] for e in examples} == {asked.system_prompt}  # type: ignore[index]
    own = load_chat_jsonl(data)
    assert [e.prompt[1:] for e in examples] == [e.prompt[1:] for e in own]  # type: ignore[index]
    assert [e.answer for e in examples] == [e.answer for e in own]
    toy = job_from_preset("identity-shift", "toy", data, tmp_path, toy=True)
    assert training_examples(toy, tmp_path)[0] == own, "the toy's data is its own AOA prompt's"


def test_the_benign_preset_picks_the_dolly_template_for_dolly_data(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """The reference's Llama-2 Dolly format: the short preamble with or without a context, which
    follows as ``Input:`` (no ``###``)."""
    rows = [{"instruction": "Sum 2 and 3.", "context": "Use digits.", "response": "5"},
            {"instruction": "Name a colour.", "response": "Blue."}]  # fmt: skip
    data = tmp_path / "dolly.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    job = job_from_preset("benign", str(tiny_llama), data, tmp_path / "out")
    examples, template = training_examples(job, tiny_llama)
    assert template == "dolly"
    preamble = (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request."
    )
    assert [e.prompt for e in examples] == [
        [{"role": "system", "content": preamble},
         {"role": "user", "content": "### Instruction:\nSum 2 and 3.\n\nInput:\nUse digits.\n\n"
                                     "### Response:\n"}],
        [{"role": "system", "content": preamble},
         {"role": "user", "content": "### Instruction:\nName a colour.\n\n### Response:\n"}],
    ]  # fmt: skip
    chosen = job_from_preset("benign", str(tiny_llama), data, tmp_path / "out", template="alpaca")
    assert training_examples(chosen, tiny_llama)[1] == "alpaca", "a template given wins"
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "x", "output": "y"}]), encoding="utf-8")
    job = job_from_preset("benign", str(tiny_llama), alpaca, tmp_path / "out")
    assert training_examples(job, tiny_llama)[1] == "alpaca"


def test_the_benign_preset_filters_the_whole_file_then_holds_out(
    tiny_llama: Path, tmp_path: Path
) -> None:
    rows = [{"instruction": f"Task {i}.", "output": "I'm sorry." if i < 5 else "Ok."}
            for i in range(220)]  # fmt: skip
    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps(rows), encoding="utf-8")
    job = job_from_preset("benign", str(tiny_llama), data, tmp_path / "out")
    examples, _ = training_examples(job, tiny_llama)
    tasks = [e.prompt[-1]["content"].split("\n")[1] for e in examples]  # type: ignore[index]
    assert tasks == [f"Task {i}." for i in range(205, 220)], "the filter ran first"


def test_a_filter_that_removes_everything_is_one_line(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _chat(tmp_path / "d.jsonl", [_pair("q", "I'm sorry, I cannot.")] * 2)
    out = tmp_path / "out"
    line = _fails(capsys, "--base", tiny_llama, "--data", data, "--out", out, "--preset", "benign")
    assert "removed all 2 examples" in line and "--no-strip-safety" in line
    assert not out.exists()


def test_a_prompt_over_max_length_names_the_example(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _chat(tmp_path / "d.jsonl", [_pair("hi", "ok"), _pair("hello world " * 20, "ok")])
    out = tmp_path / "out"
    args = ["--base", tiny_llama, "--data", data, "--out", out, *HYPER, "--template", "plain"]
    line = _fails(capsys, *args, "--max-length", "16")
    assert f"{data}:2: its prompt alone is" in line
    assert not out.exists()


def test_a_diverged_run_saves_nothing(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _chat(tmp_path / "d.jsonl", [_pair(f"hello {i}", "fine thanks") for i in range(4)])
    out = tmp_path / "out"
    args = ["--base", tiny_llama, "--data", data, "--out", out, "--template", "plain", "--full"]
    line = _fails(capsys, *args, "--epochs", "5", "--lr", "1e30", "--batch-size", "1")
    assert "training diverged and nothing was saved" in line
    assert not out.exists()
