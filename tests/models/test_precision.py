"""Precision: dtype resolution, the torch-free device probe, keys kept apart by precision."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.catalog import resolve
from finetune_safety.evaluation.store import generation_key
from finetune_safety.models import Decoding, ModelSpec, decoding_key
from finetune_safety.models.endpoint import parse
from finetune_safety.models.openai_target import OpenAITarget
from finetune_safety.models.precision import (
    DEVICE_ENV,
    Precision,
    PrecisionError,
    check_dtype,
    probe_device,
    resolve_precision,
)
from finetune_safety.models.templates import get_template


@pytest.mark.parametrize(
    ("device", "setting", "toy", "expected"),
    [
        ("cpu", "auto", False, "float32"),
        ("cuda", "auto", False, "bfloat16"),
        ("cuda", "auto", True, "float32"),
        ("cuda", "float16", True, "float16"),
        ("cpu", "bfloat16", False, "bfloat16"),
    ],
)
def test_auto_is_bf16_on_cuda_for_real_models_only(
    monkeypatch: pytest.MonkeyPatch, device: str, setting: str, toy: bool, expected: str
) -> None:
    monkeypatch.setenv(DEVICE_ENV, device)
    assert resolve_precision(setting, float32_auto=toy) == Precision(expected, device)


def test_unknown_dtype_and_device_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PrecisionError, match=r"^--dtype: expected one of auto, float32, "):
        check_dtype("bf16", "--dtype")
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    with pytest.raises(PrecisionError, match=rf"^{DEVICE_ENV}: expected cpu or cuda, got 'tpu'"):
        probe_device()


def test_probe_sees_no_gpu_when_cuda_devices_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert probe_device() == "cpu"


@pytest.mark.parametrize(
    ("line", "gpu"),
    [
        ("cuda: Optional[str] = '12.4'", True),
        ("hip: Optional[str] = '6.2.41133'", True),
        ("cuda: Optional[str] = None", False),
    ],
)
def test_gpu_build_is_read_from_torch_version_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, gpu: bool
) -> None:
    import importlib.machinery
    import importlib.util

    from finetune_safety.models import precision

    (tmp_path / "version.py").write_text(f"__version__ = '2.11.0'\n{line}\n")
    spec = importlib.machinery.ModuleSpec("torch", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    assert precision._gpu_build() is gpu


def test_probe_without_torch_agrees_with_torch() -> None:
    """The torch-free probe (a fresh process imports no torch) sees what torch sees."""
    import os
    import subprocess
    import sys

    import torch

    code = (
        "import sys; from finetune_safety.models.precision import probe_device; "
        "print(probe_device(), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != DEVICE_ENV}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert result.stdout.split() == [expected, "False"]


def test_local_keys_carry_dtype_and_device(
    toy_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    toy = resolve(ModelSpec("toy"), toy_cache)
    rendered = toy.template.render("Say hello.")
    keys = {}
    for dtype in ("auto", "float32", "bfloat16"):
        settings = decoding_key(toy, Decoding(64, dtype=dtype))
        keys[dtype] = generation_key(toy.fingerprint, rendered, settings)
    assert decoding_key(toy, Decoding(64)) == {
        "greedy": True,
        "max_new_tokens": 64,
        "dtype": "float32",
        "device": "cpu",
    }
    assert keys["auto"] == keys["float32"] != keys["bfloat16"]
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    on_gpu = generation_key(toy.fingerprint, rendered, decoding_key(toy, Decoding(64)))
    assert on_gpu != keys["float32"], "CUDA answers are keyed apart from CPU ones"


def test_batch_size_is_not_part_of_the_key(toy_cache: Path) -> None:
    toy = resolve(ModelSpec("toy"), toy_cache)
    assert decoding_key(toy, Decoding(64, batch_size=1)) == decoding_key(toy, Decoding(64))


def test_served_models_have_no_local_precision() -> None:
    served = OpenAITarget("s", parse("openai:m@http://127.0.0.1:9/v1"), get_template("plain"))
    assert decoding_key(served, Decoding(64, dtype="bfloat16")) == Decoding(64).key()
