"""A directory holding both a full model and a PEFT adapter (a LoRA directory an older
``finetune --full`` wrote over): a bare ``DIR`` is refused with one line, wherever a model is
named; ``{ model = DIR }`` is the full model without the adapter, ``{ adapter = DIR }`` the
adapter on its base (issue 23)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.catalog import locate_base, resolve
from finetune_safety.cli import main
from finetune_safety.config import model_spec
from finetune_safety.config.checks import ConfigError
from finetune_safety.errors import ModelLoadError
from finetune_safety.models import ModelSpec
from finetune_safety.models.hf import HFTarget


@pytest.fixture(scope="module")
def mixed(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_llama's files with a LoRA adapter of it saved beside them; the adapter's weights
    are random (not peft's no-op start), so it changes what the model computes."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    directory = tmp_path_factory.mktemp("mixed") / "ckpt"
    shutil.copytree(tiny_llama, directory)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), config).save_pretrained(
        directory
    )
    adapter = json.loads((directory / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_llama)
    return directory


def logits(model: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([[1, 5, 9, 4]])).logits


def loaded(spec: ModelSpec, cache: Path) -> Any:
    target = resolve(spec, cache)
    assert isinstance(target, HFTarget)
    return logits(target.load()[0])


def message(directory: Path) -> str:
    return (
        f"{directory}: holds both a full model (config.json, model.safetensors) and a PEFT "
        f"adapter (adapter_config.json), so which one to test is unclear; say it in a table, "
        f'{{ model = "{directory}" }} for the full model or {{ adapter = "{directory}" }} for '
        "the adapter (evaluate, render: --model or --adapter), or keep one per directory"
    )


def test_a_bare_directory_holding_both_is_refused(mixed: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        model_spec(str(mixed), "tool.finetune_safety.checkpoints.mine", tmp_path)
    assert str(info.value) == f"tool.finetune_safety.checkpoints.mine: {message(mixed)}"
    with pytest.raises(ModelLoadError) as loading:
        resolve(ModelSpec(str(mixed)), tmp_path)
    assert str(loading.value) == message(mixed)
    with pytest.raises(ModelLoadError):  # nor is it trained from
        locate_base(str(mixed), tmp_path)


def test_the_table_says_which_one_is_meant(mixed: Path, tiny_llama: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    alone = logits(AutoModelForCausalLM.from_pretrained(tiny_llama))
    # transformers on its own loads the adapter it finds beside a model's config.json
    assert not torch.equal(logits(AutoModelForCausalLM.from_pretrained(mixed)), alone)

    model = model_spec({"model": str(mixed)}, "checkpoints.mine", tmp_path)
    assert model == ModelSpec(model=str(mixed), full_model=True)
    assert torch.equal(loaded(model, tmp_path), alone), "the full model, without the adapter"

    adapter = model_spec({"adapter": str(mixed)}, "checkpoints.mine", tmp_path)
    assert adapter == ModelSpec(adapter=str(mixed))
    assert not torch.equal(loaded(adapter, tmp_path), alone), "the adapter on its base"


def test_evaluate_and_render_take_model_as_the_model(
    mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--model DIR`` names the model (as ``model = DIR`` does); a bare spec in the table
    stops ``evaluate`` with the one line."""
    assert main(["render", "hello", "--model", str(mixed), "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"# {mixed}, template plain\n")
    (tmp_path / "pyproject.toml").write_text(f'[tool.finetune_safety]\nbase = "{mixed}"\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert main(["evaluate"]) == 2
    assert capsys.readouterr().err == (
        f"finetune-safety: error: tool.finetune_safety.base: {message(mixed)}\n"
    )
