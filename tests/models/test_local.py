"""What a local model spec names, checked on the files before any load: a checkpoint directory
needs its config and its tokenizer (a save cut short leaves the weights without it), an adapter
may take its tokenizer from its base."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.config import ConfigError, model_spec
from finetune_safety.errors import ModelLoadError
from finetune_safety.models.local import check_model_dir


def weights_only(path: Path) -> Path:
    """What a save killed after the weights and before the tokenizer leaves."""
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def test_a_checkpoint_without_its_tokenizer_is_refused_naming_the_directory(
    tmp_path: Path,
) -> None:
    model = weights_only(tmp_path / "ckpt")
    with pytest.raises(ModelLoadError) as info:
        check_model_dir(model)
    message = str(info.value)
    assert message.startswith(f"{model}: holds no tokenizer (none of tokenizer.json,")
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"^tool\.finetune_safety\.base: .*holds no tokenizer"):
        model_spec("ckpt", "tool.finetune_safety.base", tmp_path)


@pytest.mark.parametrize(
    "tokenizer", ["tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json"]
)
def test_any_tokenizer_file_makes_it_a_checkpoint(tmp_path: Path, tokenizer: str) -> None:
    model = weights_only(tmp_path / "ckpt")
    (model / tokenizer).write_text("{}")
    assert check_model_dir(model) == model
    assert model_spec("ckpt", "base", tmp_path).model == str(model)


def test_an_adapter_may_take_its_tokenizer_from_its_base(tmp_path: Path) -> None:
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "toy"}')
    assert check_model_dir(adapter) == adapter
