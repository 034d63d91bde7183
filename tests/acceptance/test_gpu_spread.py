"""``pytest -n N`` on a machine with several GPUs: each xdist worker takes one GPU, its index
mod the GPU count, through ``CUDA_VISIBLE_DEVICES``, before any test (and so before torch starts
CUDA). The GPUs are a fake ``nvidia-smi`` here; the targets answer from a dict."""

from __future__ import annotations

import json
import os
import stat

import pytest
from harness import Project, output

#: Targets that load no weights, and a record of the GPUs each worker's process was left with
#: once collection (which opens the suite) finished; the xdist controller collects nothing.
CONFTEST = """
import json
import os

from finetune_safety.testing.doubles import DictTarget


def pytest_safety_make_target(spec, settings, config):
    if spec.model.startswith("dict:"):
        return DictTarget(settings.name, {}, template=settings.template)


def pytest_collection_finish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "alone")
    seen = {"gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}
    (session.config.rootpath / f"gpus-{worker}.json").write_text(json.dumps(seen))
"""


def _fake_nvidia_smi(project: Project, gpus: int) -> str:
    """A directory holding an ``nvidia-smi`` that lists ``gpus`` GPUs, for PATH."""
    folder = project.path / "bin"
    folder.mkdir()
    smi = folder / "nvidia-smi"
    lines = "".join(f"GPU {i}: NVIDIA H200 (UUID: GPU-{i})\\n" for i in range(gpus))
    smi.write_text(f'#!/bin/sh\n[ "$1" = "-L" ] && printf "{lines}"\n')
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def _recorded(project: Project) -> dict[str, str | None]:
    return {
        path.stem.removeprefix("gpus-"): json.loads(path.read_text())["gpus"]
        for path in project.path.glob("gpus-*.json")
    }


@pytest.fixture
def dict_project(bare_project: Project) -> Project:
    bare_project.pytester.makeconftest(CONFTEST)
    bare_project.options = ("--safety-base=dict:base", "--safety-checkpoint=mine=dict:mine")
    return bare_project


def test_each_worker_takes_its_index_mod_the_gpu_count(
    dict_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("FINETUNE_SAFETY_DEVICE", raising=False)
    smi = _fake_nvidia_smi(dict_project, 2)
    monkeypatch.setenv("PATH", f"{smi}{os.pathsep}{os.environ['PATH']}")
    result = dict_project.run("-n", "3", "--snapshot-update")
    assert result.ret == 0, output(result)
    assert _recorded(dict_project) == {"gw0": "0", "gw1": "1", "gw2": "0"}


def test_workers_spread_over_the_users_list_and_stay_off_it_on_the_cpu(
    dict_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.delenv("FINETUNE_SAFETY_DEVICE", raising=False)
    result = dict_project.run("-n", "2", "--snapshot-update")
    assert result.ret == 0, output(result)
    assert _recorded(dict_project) == {"gw0": "4", "gw1": "6"}
    monkeypatch.setenv("FINETUNE_SAFETY_DEVICE", "cpu")
    result = dict_project.run("-n", "2")
    assert result.ret == 0, output(result)
    assert _recorded(dict_project) == {"gw0": "4,6", "gw1": "4,6"}
