"""``finetune --out``: a checkpoint directory is written whole, once, and never mixed (issue 23).

Unit tests of ``written_whole``; ``test_cli_out.py`` runs the cases through the command, and
there a second run into the same directory stops naming the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety._util import progress
from finetune_safety.finetune.outdir import OutDirError, beside, written_whole
from finetune_safety.models.target import METADATA_FILE


def checkpoint(directory: Path, *names: str) -> Path:
    """A directory as ``finetune`` leaves it: its metadata file and the named files."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (METADATA_FILE, *names):
        (directory / name).write_text(name)
    return directory


def test_the_checkpoint_appears_at_out_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    with written_whole(out) as staging:
        assert staging == beside(out, "partial") == tmp_path / ".ckpt.partial"
        checkpoint(staging, "model.safetensors")
        assert not out.exists(), "nothing at --out while the checkpoint is being written"
    assert sorted(p.name for p in out.iterdir()) == [METADATA_FILE, "model.safetensors"]
    assert not staging.exists()


def test_a_relative_out_is_the_same_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with written_whole(Path("ckpt")) as staging:
        assert staging == tmp_path / ".ckpt.partial"
        checkpoint(staging)
    assert (tmp_path / "ckpt" / METADATA_FILE).is_file()


def test_a_non_empty_out_is_refused_without_overwrite(tmp_path: Path) -> None:
    out = checkpoint(tmp_path / "ckpt", "adapter_config.json")
    with pytest.raises(OutDirError) as info, written_whole(out):
        pytest.fail("nothing may be written")
    assert str(info.value) == (
        f"--out {out}: not empty (adapter_config.json, {METADATA_FILE}); give --overwrite to "
        "replace it whole, or choose another --out"
    )
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", METADATA_FILE]
    assert not beside(out, "partial").exists()


def test_overwrite_replaces_the_directory_whole(tmp_path: Path) -> None:
    """Retraining --full into a former LoRA directory: no adapter file survives."""
    out = checkpoint(tmp_path / "ckpt", "adapter_config.json", "adapter_model.safetensors")
    with written_whole(out, overwrite=True) as staging:
        checkpoint(staging, "config.json", "model.safetensors")
        assert (out / "adapter_config.json").exists(), "the old one stays until the new is whole"
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", METADATA_FILE, "model.safetensors",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".ckpt.lock")) == [
        "ckpt"
    ]


def test_an_empty_out_takes_the_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    out.mkdir()
    with written_whole(out) as staging:
        checkpoint(staging)
    assert (out / METADATA_FILE).is_file()


@pytest.mark.parametrize("what", ["project", "file"])
def test_overwrite_touches_only_a_checkpoint_finetune_wrote(tmp_path: Path, what: str) -> None:
    """``--out . --overwrite`` in a project must not delete the project."""
    out = tmp_path / "project"
    if what == "file":
        out.write_text("x")
        expected = f"--out {out}: is a file; give a directory for the checkpoint"
    else:
        out.mkdir()
        (out / "pyproject.toml").write_text("")
        expected = (
            f"--out {out}: --overwrite replaces only a checkpoint finetune wrote (with "
            f"{METADATA_FILE}); this directory holds pyproject.toml: remove it yourself or "
            "choose another --out"
        )
    with pytest.raises(OutDirError) as info, written_whole(out, overwrite=True):
        pytest.fail("nothing may be written")
    assert str(info.value) == expected
    assert out.exists()


@pytest.mark.parametrize("read", ["train.jsonl", "."], ids=["data", "base"])
def test_overwrite_never_deletes_what_the_run_reads(tmp_path: Path, read: str) -> None:
    """``--data ckpt/train.jsonl`` or ``--base ckpt``, with ``--out ckpt --overwrite``."""
    out = checkpoint(tmp_path / "ckpt", "train.jsonl")
    inputs = [out / read]
    with pytest.raises(OutDirError) as info, written_whole(out, overwrite=True, inputs=inputs):
        pytest.fail("nothing may be written")
    assert str(info.value) == (
        f"--out {out}: holds {(out / read).resolve()}, which this run reads and --overwrite "
        "would delete; choose another --out"
    )
    assert (out / "train.jsonl").exists()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_run_leaves_out_as_it_was(tmp_path: Path, error: type[BaseException]) -> None:
    out = checkpoint(tmp_path / "ckpt", "adapter_config.json")
    with pytest.raises(error), written_whole(out, overwrite=True) as staging:
        checkpoint(staging, "config.json")
        raise error
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", METADATA_FILE]
    assert not staging.exists()


def test_what_a_killed_run_left_is_removed_and_named(tmp_path: Path) -> None:
    """A kill (no ``finally`` runs) leaves the partial directory, and a kill between the two
    renames of an overwrite the old one: neither is at --out, and the next run removes both."""
    out = tmp_path / "ckpt"
    partial = checkpoint(beside(out, "partial"), "config.json")
    old = checkpoint(beside(out, "old"), "adapter_config.json")
    lines: list[str] = []
    with progress.sink(lines.append), written_whole(out) as staging:
        assert not old.exists() and not any(staging.iterdir()), "a fresh, empty directory"
        checkpoint(staging, "model.safetensors")
    assert lines == [
        f"{progress.PREFIX}removed {partial}, left by an interrupted finetune run into {out}",
        f"{progress.PREFIX}removed {old}, left by an interrupted finetune run into {out}",
    ]
    assert sorted(p.name for p in out.iterdir()) == [METADATA_FILE, "model.safetensors"]
