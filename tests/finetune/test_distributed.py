"""Data-parallel training under ``torchrun`` (two CPU processes over gloo) trains the toy as one
process does: the global batch of 4 as 2 processes x micro-batch 2, as 1 process x micro-batch
2 x accumulation 2, and as 1 process in one pass give the same weights up to float order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.cli import main
from finetune_safety.config.names import TOY_BASE

DATA = fixtures_dir() / "finetune" / "harmful-10shot.jsonl"
#: 10 examples at batch 4: steps of 4, 4 and 2 (the short last batch gives each process 1).
ARGS = ["finetune", "--base", TOY_BASE, "--data", str(DATA), "--full", "--epochs", "1"]
ARGS += ["--lr", "1e-3", "--batch-size", "4", "--template", "plain", "--threads", "1"]
LAYOUT = ("world_size", "micro_batch", "accumulation")


def _weights(out: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(out / "model.safetensors")


def _distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    import torch

    return sum(float(torch.sum((a[k] - b[k]) ** 2)) for k in a) ** 0.5


def _meta(out: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((out / "finetune_safety.json").read_text(encoding="utf-8"))
    return meta


@pytest.fixture(scope="module")
def runs(toy_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three fine-tunes, keyed by how they spread the batch; the torchrun one's output."""
    import torch.distributed

    if not torch.distributed.is_available():
        pytest.skip("this torch has no torch.distributed")
    root = tmp_path_factory.mktemp("distributed")
    cache = ["--cache-dir", str(toy_cache)]
    two = root / "two-processes"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*launch, "-m", "finetune_safety", *ARGS, "--micro-batch", "2", "--out", str(two), *cache],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (root / "two-processes.out").write_text(done.stdout)
    (root / "two-processes.err").write_text(done.stderr)
    one_micro, one_pass = root / "accumulated", root / "one-pass"
    assert main([*ARGS, "--micro-batch", "2", "--out", str(one_micro), *cache]) == 0
    assert main([*ARGS, "--out", str(one_pass), *cache]) == 0
    return {"two": two, "accumulated": one_micro, "one-pass": one_pass}


def test_two_processes_train_as_one(runs: dict[str, Path], toy_cache: Path) -> None:
    base = next((toy_cache / "toy").glob(f"*/{TOY_BASE}/model.safetensors"))
    before = _weights(base.parent)
    two, accumulated, one_pass = (_weights(runs[k]) for k in ("two", "accumulated", "one-pass"))
    assert two.keys() == accumulated.keys() == one_pass.keys() == before.keys()
    change = _distance(one_pass, before)
    assert change > 0.1, "the fine-tune moved the weights"
    # Within 1% of the fine-tune's change (float order only; measured: about 1e-6).
    assert _distance(two, one_pass) < 0.01 * change
    assert _distance(accumulated, one_pass) < 0.01 * change
    assert _distance(two, accumulated) < 0.01 * change


def test_the_loss_is_the_whole_batch_loss_however_it_is_spread(runs: dict[str, Path]) -> None:
    """The sum of token losses over the global batch's tokens, not a mean of micro-batch
    means: the same number in all three runs."""
    losses = {k: _meta(out)["losses"] for k, out in runs.items()}
    assert losses["two"] == pytest.approx(losses["one-pass"], rel=1e-5)
    assert losses["accumulated"] == pytest.approx(losses["one-pass"], rel=1e-5)


def test_the_metadata_records_how_the_batch_was_spread(runs: dict[str, Path]) -> None:
    layouts = {k: tuple(_meta(out)[f] for f in LAYOUT) for k, out in runs.items()}
    assert layouts == {"two": (2, 2, 1), "accumulated": (1, 2, 2), "one-pass": (1, 4, 1)}


def test_only_the_main_process_logs_and_answers(runs: dict[str, Path]) -> None:
    root = runs["two"].parent
    out, err = ((root / f"two-processes.{s}").read_text() for s in ("out", "err"))
    assert out.splitlines() == [str(runs["two"])]
    assert err.count("step 3/3: loss") == 1
    assert err.count("saved the model to") == 1
