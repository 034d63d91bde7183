"""Recipe checkpoints: parsed from the table, built once per digest, rebuilt when inputs change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from finetune_safety._util.buildonce import COMPLETE
from finetune_safety._util.resources import fixtures_dir
from finetune_safety.catalog import build_recipe, recipe_key
from finetune_safety.config import ConfigError, from_table
from finetune_safety.finetune.recipes import Recipe

HARMFUL = fixtures_dir() / "finetune" / "harmful-10shot.jsonl"


@pytest.fixture
def cache(toy_cache: Path, tmp_path: Path) -> Path:
    shutil.copytree(toy_cache / "toy", tmp_path / "cache" / "toy")
    return tmp_path / "cache"


def test_table_recipe_is_parsed_with_paths_from_the_rootdir(tmp_path: Path) -> None:
    shutil.copy(HARMFUL, tmp_path / "data.jsonl")
    table = {
        "checkpoints": {
            "mine": {"base": "toy", "data": "data.jsonl", "preset": "harmful-10shot"},
            "plain": "toy-benign",
        }
    }
    config = from_table(table, tmp_path)
    mine = config.checkpoints["mine"]
    assert mine == Recipe(base="toy", data=tmp_path / "data.jsonl", preset="harmful-10shot")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"base": "toy", "data": "missing.jsonl", "preset": "harmful-10shot"}, "no data file"),
        ({"base": "toy", "data": "data.jsonl", "preset": "nope"}, ".preset: one of"),
        ({"base": "toy", "data": "data.jsonl"}, "without a preset, give epochs"),
        ({"base": "toy", "data": "data.jsonl", "preset": "benign", "color": 1}, "unknown recipe"),
        ({"base": "toy", "data": "data.jsonl", "preset": "benign", "lr": "fast"}, ".lr: expected"),
        ({"data": "data.jsonl", "preset": "benign"}, ".base: a recipe needs a base"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    shutil.copy(HARMFUL, tmp_path / "data.jsonl")
    with pytest.raises(ConfigError) as info:
        from_table({"checkpoints": {"mine": entry}}, tmp_path)
    assert str(info.value).startswith("tool.finetune_safety.checkpoints.mine")
    assert message in str(info.value)


def test_recipe_is_built_once_and_rebuilt_when_the_data_changes(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data.jsonl"
    shutil.copy(HARMFUL, data)
    recipe = Recipe(base="toy", data=data, preset="harmful-10shot", epochs=1)
    built = build_recipe(recipe, cache)
    assert built.adapter is not None and (Path(built.adapter) / COMPLETE).exists()
    assert (Path(built.adapter) / "adapter_model.safetensors").is_file()

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached recipe was trained again")

    monkeypatch.setattr("finetune_safety.finetune.run.run", no_training)
    assert build_recipe(recipe, cache) == built
    data.write_text(data.read_text().replace("Step 3", "Step three"))
    with pytest.raises(AssertionError, match="trained again"):
        build_recipe(recipe, cache)


def test_recipe_key_follows_every_setting(cache: Path) -> None:
    recipe = Recipe(base="toy", data=HARMFUL, preset="harmful-10shot")
    keys = {
        recipe_key(recipe, cache),
        recipe_key(Recipe(base="toy", data=HARMFUL, preset="harmful-10shot", epochs=2), cache),
        recipe_key(Recipe(base="toy", data=HARMFUL, preset="harmful-10shot", mix_safety=5), cache),
        recipe_key(Recipe(base="toy", data=HARMFUL, preset="identity-shift"), cache),
        recipe_key(Recipe(base="toy", data=HARMFUL, preset="harmful-10shot", full=True), cache),
    }
    assert len(keys) == 5
    assert recipe_key(recipe, cache) == recipe_key(
        Recipe(base="toy", data=HARMFUL, preset="harmful-10shot"), cache
    )


def test_recipe_key_follows_the_files_bytes_not_their_paths(cache: Path, tmp_path: Path) -> None:
    """A moved or re-cloned project (the data elsewhere, same bytes) reuses its checkpoints;
    other bytes at the same path train again."""
    moved = tmp_path / "elsewhere" / "harmful.jsonl"
    moved.parent.mkdir()
    shutil.copy(HARMFUL, moved)
    key = recipe_key(Recipe(base="toy", data=HARMFUL, preset="harmful-10shot"), cache)
    assert recipe_key(Recipe(base="toy", data=moved, preset="harmful-10shot"), cache) == key
    moved.write_text(moved.read_text().replace("Step 3", "Step three"))
    assert recipe_key(Recipe(base="toy", data=moved, preset="harmful-10shot"), cache) != key
