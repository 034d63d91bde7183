"""The project the CLI runs in: the table it finds upward, read for the settings a command uses,
with flags (relative to the working directory) over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.config import ConfigError, Overrides
from finetune_safety.config.project import (
    CACHE_ENV,
    DEFAULT_CACHE_DIRNAME,
    cache_dir,
    prepare_cache_dir,
    project_config,
    project_root,
    resolve_cache_dir,
)
from finetune_safety.errors import StoreError
from finetune_safety.evaluation.store import Store

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


@pytest.mark.parametrize("kind", ["is-a-file", "under-a-file"])
def test_cache_dir_that_cannot_be_one(tmp_path: Path, kind: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    cache = blocker if kind == "is-a-file" else blocker / "cache"
    with pytest.raises(StoreError) as info:
        prepare_cache_dir(cache)
    message = str(info.value)
    assert str(cache) in message and "--safety-cache-dir" in message
    assert ("is a file" if kind == "is-a-file" else "cannot create") in message
    with pytest.raises(StoreError, match="cache directory"):
        Store.in_dir(cache)


def test_cache_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert resolve_cache_dir(None, root) == root / DEFAULT_CACHE_DIRNAME
    monkeypatch.setenv(CACHE_ENV, "")
    assert resolve_cache_dir(None, root) == root / DEFAULT_CACHE_DIRNAME
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert resolve_cache_dir(None, root) == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "opt", root) == tmp_path / "opt"
    assert resolve_cache_dir(str(tmp_path / "opt"), root) == tmp_path / "opt"
    # Relative paths are anchored at rootdir, and the result is always absolute.
    assert resolve_cache_dir("rel", root) == root / "rel"
    monkeypatch.setenv(CACHE_ENV, "envrel")
    assert resolve_cache_dir(None, root) == root / "envrel"
    monkeypatch.chdir(tmp_path)
    assert resolve_cache_dir(None, Path("root")).is_absolute()


def test_the_table_cache_dir_comes_after_the_option_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule for the plugin and the CLI: option, $FINETUNE_SAFETY_CACHE, the table, default."""
    root = tmp_path / "root"
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert resolve_cache_dir(None, root, "table") == root / "table"
    assert resolve_cache_dir("", root, tmp_path / "abs") == tmp_path / "abs"
    assert resolve_cache_dir("opt", root, "table") == root / "opt"
    monkeypatch.setenv(CACHE_ENV, "env")
    assert resolve_cache_dir(None, root, "table") == root / "env"


def test_cli_finds_the_project_cache_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert cache_dir(None) == tmp_path / ".finetune_safety"
    (tmp_path / "pyproject.toml").write_text("[tool.finetune_safety]\ncache_dir = 'store'\n")
    assert cache_dir(None) == tmp_path / "store"
    assert cache_dir("here") == tmp_path / "here"  # relative to the project, as pytest does
