"""The project the CLI runs in: the table it finds upward, read for the settings a command uses,
with flags (relative to the working directory) over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.config import ConfigError, Overrides
from finetune_safety.project import project_config, project_root

READS = {"benchmark", "judge_prompt", "max_new_tokens"}


@pytest.fixture
def sub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.finetune_safety]\n"
        'benchmark = "jsonl:bench.jsonl"\n'
        'judge_prompt = "judge.txt"\n'
        "max_new_tokens = 64\n"
        "[tool.finetune_safety.checkpoints]\n"
        'later = "out/not-trained-yet"\n'
    )
    (tmp_path / "judge.txt").write_text("{instruction} {response}")
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)
    (sub / "mine.txt").write_text("{instruction} {response}")
    monkeypatch.chdir(sub)
    return sub


def test_the_project_is_found_upward(sub: Path, tmp_path: Path) -> None:
    assert project_root(sub) == tmp_path
    assert project_root(tmp_path.parent) == tmp_path.parent  # none upward: where it started


def test_table_paths_start_at_the_project_and_flags_at_the_working_directory(
    sub: Path, tmp_path: Path
) -> None:
    config = project_config(Overrides(flags=True), only=READS)
    assert config.source == tmp_path / "pyproject.toml"
    assert config.benchmark == f"jsonl:{tmp_path / 'bench.jsonl'}"
    assert (config.judge_prompt, config.max_new_tokens) == (tmp_path / "judge.txt", 64)
    flags = Overrides(flags=True, judge_prompt="mine.txt", max_new_tokens=8)
    config = project_config(flags, only=READS)
    assert (config.judge_prompt, config.max_new_tokens) == (sub / "mine.txt", 8)
    with pytest.raises(ConfigError, match=r"^--judge-prompt: no judge prompt file at .*deep"):
        project_config(Overrides(flags=True, judge_prompt="judge.txt"), only=READS)


def test_only_the_settings_read_are_checked_but_unknown_keys_always_are(
    sub: Path, tmp_path: Path
) -> None:
    project_config(Overrides(flags=True), only=READS)  # the untrained checkpoint is not read
    with pytest.raises(ConfigError, match=r"^tool\.finetune_safety\.checkpoints\.later: "):
        project_config(Overrides(flags=True), only={*READS, "checkpoints"})
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("max_new_tokens", "max_new_token"))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['max_new_token'\]"):
        project_config(Overrides(flags=True), only=READS)
