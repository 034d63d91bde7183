"""``finetune --out`` as a user meets it (issue 23): a non-empty directory is refused before any
work, ``--overwrite`` replaces a checkpoint whole (a former LoRA directory retrained ``--full``
keeps no adapter file, and loads as the new model), a second run stops naming the first, and
what a killed run left is never taken for a checkpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_safety.catalog import resolve
from finetune_safety.cli import main
from finetune_safety.config import model_spec
from finetune_safety.config.checks import ConfigError
from finetune_safety.models import ModelSpec
from finetune_safety.models.hf import HFTarget
from finetune_safety.models.target import METADATA_FILE

HYPER = ["--epochs", "1", "--lr", "1e-3", "--batch-size", "2", "--template", "plain"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": f"hello world? ({i})"},
                      {"role": "assistant", "content": "fine thanks"}]}
        for i in range(4)
    ]  # fmt: skip
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def finetune(*args: object) -> int:
    return main(["finetune", *(str(a) for a in args)])


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of a run that stopped with exit code 2."""
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("finetune-safety: error: ")
    return line.removeprefix("finetune-safety: error: ")


def test_retraining_full_into_a_lora_directory_replaces_it_whole(
    tiny_llama: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ckpt"
    common = ["--base", tiny_llama, "--data", data, "--out", out, *HYPER, "--cache-dir", tmp_path]
    assert finetune(*common) == 0  # LoRA, the default without a preset
    lora = sorted(p.name for p in out.iterdir())
    assert "adapter_config.json" in lora
    capsys.readouterr()

    assert finetune(*common, "--full") == 2
    line = one_line(capsys)
    assert line.startswith(f"--out {out.resolve()}: not empty (")
    assert line.endswith("give --overwrite to replace it whole, or choose another --out")
    assert sorted(p.name for p in out.iterdir()) == lora, "untouched"

    assert finetune(*common, "--full", "--overwrite") == 0
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", METADATA_FILE} <= files
    assert not {name for name in files if name.startswith("adapter_")}, "nothing of the LoRA"
    assert json.loads((out / METADATA_FILE).read_text())["lora"] is None
    # the gate and evaluate take it for what it now is: the full model
    assert model_spec(str(out), "checkpoints.mine", tmp_path) == ModelSpec(model=str(out))
    target = resolve(ModelSpec(model=str(out)), tmp_path)
    assert isinstance(target, HFTarget) and target.local_dir() == out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ckpt")) == [
        ".ckpt.lock", ".ckpt.lock.owner",
    ], "no partial or old directory is left"  # fmt: skip


def test_a_non_empty_out_stops_before_the_toy_is_built(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    cache = tmp_path / "cache"
    args = ["--base", "toy", "--data", data, "--preset", "benign", "--out", out]
    assert finetune(*args, "--cache-dir", cache) == 2
    assert one_line(capsys).startswith(f"--out {out.resolve()}: not empty (notes.txt); ")
    assert finetune(*args, "--cache-dir", cache, "--overwrite") == 2
    assert "--overwrite replaces only a checkpoint finetune wrote" in one_line(capsys)
    assert not (cache / "toy").exists()
    assert (out / "notes.txt").read_text() == "mine"


HOLD = """
import sys
from pathlib import Path
from finetune_safety.finetune.outdir import written_whole
with written_whole(Path(sys.argv[1])):
    print("writing", flush=True)
    sys.stdin.read()
"""


def test_a_second_finetune_into_the_same_out_stops_naming_the_first(
    tiny_llama: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first run is writing into ``--out`` (a process held inside ``written_whole`` until its
    stdin closes: no timing involved); the second stops at once, one line, pid and host."""
    out = tmp_path / "ckpt"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert first.stdout is not None and first.stdout.readline() == "writing\n"
        args = ["--base", tiny_llama, "--data", data, "--out", out, *HYPER]
        assert finetune(*args, "--cache-dir", tmp_path) == 2
    finally:
        first.communicate("")
    assert one_line(capsys) == (
        f"--out {out.resolve()}: another finetune run (pid {first.pid} on "
        f"{socket.gethostname()}) is writing a checkpoint here; wait for it to end or choose "
        "another --out"
    )


def test_what_a_killed_run_left_is_never_taken_for_a_checkpoint(
    tiny_llama: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill during the save leaves ``.ckpt.partial`` (weights, no tokenizer yet) beside
    ``--out``, nothing at it: the gate finds no checkpoint, and the next run removes it."""
    out = tmp_path / "ckpt"
    partial = tmp_path / ".ckpt.partial"
    partial.mkdir()
    for name in ("config.json", "model.safetensors"):
        (partial / name).write_bytes((tiny_llama / name).read_bytes())
    with pytest.raises(ConfigError, match="no directory at"):
        model_spec("ckpt", "checkpoints.mine", tmp_path)
    args = ["--base", tiny_llama, "--data", data, "--out", out, *HYPER]
    assert finetune(*args, "--cache-dir", tmp_path) == 0
    err = capsys.readouterr().err
    assert f"removed {partial}, left by an interrupted finetune run into {out.resolve()}" in err
    assert not partial.exists()
    assert (out / "tokenizer_config.json").is_file()
