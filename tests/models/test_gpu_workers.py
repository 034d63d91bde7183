"""GPUs without starting CUDA: which ones a process sees, the one each xdist worker takes
(worker index mod the GPU count), and ``evaluate --device``. All on the CPU: the GPUs here are
``CUDA_VISIBLE_DEVICES`` entries and a fake ``nvidia-smi``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from finetune_safety.models.precision import (
    DEVICE_ENV,
    VISIBLE_ENV,
    PrecisionError,
    pin_xdist_worker,
    use_device,
    visible_gpus,
    worker_gpu,
)

SMI_LINES = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i}abc)\\n" for i in range(3))


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """No device variables to start with, and none left behind by the code under test (which
    sets them in ``os.environ``): a set-then-delete makes monkeypatch restore the absence."""
    for name in (VISIBLE_ENV, DEVICE_ENV):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.fixture
def three_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose ``nvidia-smi -L`` lists three GPUs, with no CUDA_VISIBLE_DEVICES."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\n[ "$1" = "-L" ] && printf "{SMI_LINES}"\n')
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(
    ("worker", "gpus", "expected"),
    [
        ("gw0", ["0", "1"], "0"),
        ("gw1", ["0", "1"], "1"),
        ("gw2", ["0", "1"], "0"),
        ("gw7", ["0", "1", "2"], "1"),
        ("gw1", ["4", "6"], "6"),  # a user's list: its entries, in its order
        ("gw3", ["GPU-a", "GPU-b"], "GPU-b"),
        ("gw1", ["0"], None),  # one GPU: nothing to spread
        ("gw1", [], None),
        ("main", ["0", "1"], None),
    ],
)
def test_each_worker_takes_its_index_mod_the_gpu_count(
    worker: str, gpus: list[str], expected: str | None
) -> None:
    assert worker_gpu(worker, gpus) == expected


@pytest.mark.parametrize(
    ("listed", "expected"),
    [("2,5,7", ["2", "5", "7"]), (" 1 , 3", ["1", "3"]), ("0,-1,2", ["0"]), ("", []), ("-1", [])],
)
def test_visible_gpus_are_the_users_list_as_cuda_reads_it(
    monkeypatch: pytest.MonkeyPatch, listed: str, expected: list[str]
) -> None:
    monkeypatch.setenv(VISIBLE_ENV, listed)
    monkeypatch.setenv("PATH", "")  # the list alone decides: nvidia-smi is not asked
    assert visible_gpus() == expected


@pytest.mark.usefixtures("three_gpus")
def test_without_a_list_nvidia_smi_counts_the_gpus() -> None:
    assert visible_gpus() == ["0", "1", "2"]


def test_without_nvidia_smi_there_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert visible_gpus() == []


@pytest.mark.usefixtures("three_gpus")
def test_a_worker_is_pinned_to_its_gpu_and_the_cpu_setting_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw4")
    assert pin_xdist_worker() == "1"
    assert os.environ[VISIBLE_ENV] == "1"
    monkeypatch.delenv(VISIBLE_ENV)
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert pin_xdist_worker() is None
    assert VISIBLE_ENV not in os.environ
    monkeypatch.delenv(DEVICE_ENV)
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert pin_xdist_worker() is None, "not an xdist worker"
    assert VISIBLE_ENV not in os.environ


@pytest.mark.usefixtures("three_gpus")
def test_use_device_picks_a_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    use_device("cuda:2", "--device")
    assert (os.environ[VISIBLE_ENV], os.environ[DEVICE_ENV]) == ("2", "cuda")
    monkeypatch.setenv(VISIBLE_ENV, "5,7")
    use_device("cuda:1", "--device")
    assert (os.environ[VISIBLE_ENV], os.environ[DEVICE_ENV]) == ("7", "cuda")
    use_device("cpu", "--device")
    assert (os.environ[VISIBLE_ENV], os.environ[DEVICE_ENV]) == ("7", "cpu")


@pytest.mark.usefixtures("three_gpus")
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda:3", "--device cuda:3: this process sees 3 GPU(s)"),
        ("tpu", "--device: expected cpu, cuda or cuda:N, got 'tpu'"),
        ("cpu:1", "--device: expected cpu, cuda or cuda:N, got 'cpu:1'"),
    ],
)
def test_use_device_names_a_device_it_cannot_use(device: str, message: str) -> None:
    with pytest.raises(PrecisionError) as info:
        use_device(device, "--device")
    assert str(info.value) == message
    assert DEVICE_ENV not in os.environ
