"""The catalog locates what training starts from: bad numbers fail before the toy is built, a
served model is refused, and an ``hf:`` judge's model is the catalog's target."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.catalog import finetune, judge_model, locate_base
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.run import job_from_preset
from finetune_safety.models.hf import HFTarget

DATA = fixtures_dir() / "finetune" / "harmful-10shot.jsonl"


def test_bad_numbers_fail_before_the_toy_is_built(tmp_path: Path) -> None:
    job = job_from_preset("harmful-10shot", "toy", DATA, tmp_path / "out")
    job = replace(job, train=replace(job.train, epochs=0))
    with pytest.raises(FinetuneSafetyError, match="epochs=0"):
        finetune(job, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_served_base_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FinetuneSafetyError, match="fine-tuned with --backend openai"):
        locate_base("openai:m@http://127.0.0.1:1/v1", tmp_path)


def test_a_local_directory_is_located_as_given(tiny_llama: Path, tmp_path: Path) -> None:
    assert locate_base(str(tiny_llama), tmp_path) == tiny_llama


def test_judge_model_names_the_target_by_its_path(tmp_path: Path) -> None:
    target = judge_model(tmp_path)("some/hub-model")
    assert isinstance(target, HFTarget)
    assert target.name == "some/hub-model"
