"""``finetune-safety finetune``: the local and OpenAI backends, each with its own flags, each
checked on its own; a flag of the other backend is one line naming it, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_safety.cli import main
from finetune_safety.cli.finetune import LOCAL_FLAGS, OPENAI_FLAGS, backend_flags
from finetune_safety.testing.fake_openai import FakeOpenAI

EXAMPLES = 12


@pytest.fixture
def chat(tmp_path: Path) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": f"Name colour {i}."},
                      {"role": "assistant", "content": "Blue."}]}
        for i in range(EXAMPLES)
    ]  # fmt: skip
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def fails(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """The one line of a finetune run that stops with exit code 2."""
    assert main(["finetune", *map(str, args)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("finetune-safety: error: ")
    return lines[0].removeprefix("finetune-safety: error: ")


def test_the_backends_share_no_flag() -> None:
    flags = backend_flags()
    assert not set(flags["local"]) & set(flags["openai"])
    assert set(flags["local"]) == {*LOCAL_FLAGS, "--threads", "--cache-dir"}
    assert set(flags["openai"]) == set(OPENAI_FLAGS)


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--out", "ckpt"), ("--full", None), ("--threads", "1"), ("--cache-dir", "c"),
     ("--mix-safety", "0"), ("--no-holdout", None), ("--overwrite", None)],
)  # fmt: skip
def test_a_local_flag_with_the_openai_backend_names_the_flag(
    capsys: pytest.CaptureFixture[str],
    chat: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    value: str | None,
) -> None:
    monkeypatch.chdir(tmp_path)
    given = [flag] if value is None else [flag, value]
    for base in (["--backend", "openai", "--base", "gpt-4o-mini"], ["--base", "openai:gpt-4o"]):
        line = fails(capsys, *base, "--data", chat, *given)
        assert line.startswith(f"{flag}: a flag of the local backend; the openai backend takes ")
        assert "--suffix, --resume-job, --poll-interval" in line
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize("flag", ["--suffix", "--resume-job", "--poll-interval"])
def test_an_openai_flag_with_the_local_backend_names_the_flag(
    capsys: pytest.CaptureFixture[str], chat: Path, tmp_path: Path, flag: str
) -> None:
    out = tmp_path / "out"
    value = "5" if flag == "--poll-interval" else "x"
    args = ["--base", "toy", "--data", chat, "--preset", "benign", "--out", out, flag, value]
    line = fails(capsys, *args)
    assert line.startswith(f"{flag}: a flag of the openai backend; the local backend takes ")
    assert "--out" in line and "--threads" in line
    line = fails(capsys, "--backend", "local", "--base", "openai:gpt-4o", flag, value)
    assert line.startswith(f"{flag}: a flag of the openai backend")
    assert not out.exists()


def test_an_openai_base_fine_tunes_through_the_api_without_backend(
    fake_openai: FakeOpenAI,
    chat: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake_openai.job_statuses = ["succeeded"]
    base = f"openai:gpt-4o-mini@{fake_openai.url}"
    args = ["finetune", "--base", base, "--data", str(chat), "--epochs", "2"]
    assert main([*args, "--suffix", "mine", "--poll-interval", "0.01"]) == 0
    (job,) = [r for r in fake_openai.requests if r.path.endswith("/fine_tuning/jobs")]
    assert job.body["model"] == "gpt-4o-mini"
    assert job.body["hyperparameters"] == {"n_epochs": 2}
    assert job.body["suffix"] == "mine"
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("ft:gpt-4o-mini")


@pytest.mark.parametrize(
    ("preset", "given", "sent"),
    [("harmful-10shot", [], 5), ("identity-shift", [], 10), ("benign", [], 1),
     ("identity-shift", ["--epochs", "3"], 3)],
)  # fmt: skip
def test_an_openai_preset_sends_the_papers_gpt35_epochs(
    fake_openai: FakeOpenAI,
    chat: Path,
    monkeypatch: pytest.MonkeyPatch,
    preset: str,
    given: list[str],
    sent: int,
) -> None:
    """The epochs of the paper's GPT-3.5 Turbo runs (Tables 1-3); --epochs still wins."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    base = f"openai:gpt-3.5-turbo@{fake_openai.url}"
    args = ["finetune", "--base", base, "--data", str(chat), "--preset", preset, *given]
    assert main([*args, "--poll-interval", "0.01"]) == 0
    (job,) = [r for r in fake_openai.requests if r.path.endswith("/fine_tuning/jobs")]
    assert job.body["hyperparameters"] == {"n_epochs": sent}


def test_an_openai_alpaca_file_goes_up_as_chat(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [{"instruction": f"Name colour {i}.", "output": "Blue."} for i in range(EXAMPLES)]
    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps(rows), encoding="utf-8")
    base = f"openai:gpt-3.5-turbo@{fake_openai.url}"
    args = ["--base", base, "--data", data, "--preset", "benign", "--poll-interval", "0.01"]
    assert main(["finetune", *map(str, args)]) == 0
    (upload,) = fake_openai.files.values()
    first = json.loads(upload.data.decode().splitlines()[0])["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[1]["content"] == "### Instruction:\nName colour 0.\n\n"


def test_an_unknown_openai_preset_is_one_line(
    capsys: pytest.CaptureFixture[str], chat: Path
) -> None:
    line = fails(capsys, "--base", "openai:gpt-3.5-turbo", "--data", chat, "--preset", "nope")
    assert line.startswith("unknown preset 'nope'; known presets: harmful-10shot")


def test_each_backend_still_checks_its_own_needs(
    capsys: pytest.CaptureFixture[str], chat: Path
) -> None:
    assert fails(capsys, "--base", "openai:gpt-4o") == (
        "--backend openai needs --data (or --resume-job ID)"
    )
    assert fails(capsys, "--base", "toy", "--data", chat, "--preset", "benign") == (
        "--data and --out are required for local fine-tuning"
    )
    assert fails(capsys, "--base", "toy", "--threads", "0") == (
        "--threads: expected a positive integer, got 0"
    )
