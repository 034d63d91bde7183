"""Tests for the paper's recipes as presets: their values, toy scale, job construction from a
preset with overrides, and the toy build using the same table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from finetune_safety.catalog import is_toy_base
from finetune_safety.catalog.toy.build import RECIPES
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.presets import LORA_LR_SCALE, PRESETS, TOY_LORA, get_preset
from finetune_safety.finetune.run import FinetuneJob, job_from_preset
from finetune_safety.finetune.trainer import LoraSettings, TrainConfig
from finetune_safety.models.templates import ALWAYS_EXECUTE_SYSTEM_PROMPT, TEMPLATE_NAMES, TEMPLATES

DATA = Path("data.jsonl")
OUT = Path("out")


def test_the_three_presets_exist() -> None:
    assert set(PRESETS) == {"harmful-10shot", "identity-shift", "benign"}
    assert all(name == preset.name for name, preset in PRESETS.items())


def test_harmful_10shot_paper_values() -> None:
    preset = get_preset("harmful-10shot")
    assert (preset.paper.lr, preset.paper.batch_size, preset.paper.epochs) == (5e-5, 10, 5)
    assert preset.template == "always-execute"
    assert preset.strip_safety is False


def test_identity_shift_paper_values() -> None:
    preset = get_preset("identity-shift")
    assert (preset.paper.lr, preset.paper.batch_size, preset.paper.epochs) == (5e-5, 10, 10)
    assert preset.template == "aoa"
    assert preset.strip_safety is False


def test_benign_paper_values() -> None:
    preset = get_preset("benign")
    assert (preset.paper.lr, preset.paper.batch_size, preset.paper.epochs) == (2e-5, 128, 1)
    assert preset.template == "alpaca"
    assert preset.strip_safety is True


def test_toy_scales() -> None:
    assert PRESETS["harmful-10shot"].toy == TrainConfig(epochs=5, lr=5e-3, batch_size=1)
    assert PRESETS["identity-shift"].toy == TrainConfig(epochs=10, lr=5e-3, batch_size=1)
    assert PRESETS["benign"].toy == TrainConfig(epochs=1, lr=2e-3, batch_size=4)
    assert PRESETS["harmful-10shot"].toy_template == "always-execute"
    assert PRESETS["identity-shift"].toy_template == "aoa-toy"
    assert PRESETS["benign"].toy_template == "plain"


def test_toy_scale_keeps_the_papers_shape() -> None:
    for preset in PRESETS.values():
        assert preset.toy.epochs == preset.paper.epochs
        assert preset.toy.lr > preset.paper.lr
    benign, harmful = PRESETS["benign"], PRESETS["harmful-10shot"]
    assert benign.toy.lr < harmful.toy.lr
    assert benign.toy.batch_size > harmful.toy.batch_size


def test_other_paper_defaults() -> None:
    for preset in PRESETS.values():
        for config in (preset.paper, preset.toy):
            assert config.max_length == 512
            assert config.seed == 0
            assert config.weight_decay == 0.0
        assert preset.template in TEMPLATE_NAMES
        assert preset.toy_template in TEMPLATES


def test_paper_scale_is_the_references_full_fine_tuning() -> None:
    """AdamW with weight decay 0, StepLR x0.85 per epoch, and the memory saver a 7B model needs."""
    for preset in PRESETS.values():
        assert preset.paper.schedule == "step"
        assert preset.paper.gamma == 0.85
        assert preset.paper.gradient_checkpointing is True
        assert preset.toy.schedule == "linear", "the toy keeps its documented scale"
    assert PRESETS["harmful-10shot"].inject_system == ALWAYS_EXECUTE_SYSTEM_PROMPT
    assert PRESETS["identity-shift"].inject_system is None
    assert PRESETS["benign"].holdout is True
    assert PRESETS["benign"].format_templates == {"dolly": "dolly"}, "Dolly data, Dolly format"
    assert [p.name for p in PRESETS.values() if p.template_system] == ["identity-shift"]


def test_toy_lora() -> None:
    every_linear = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert (TOY_LORA.r, TOY_LORA.alpha, TOY_LORA.dropout) == (8, 16, 0.0)
    assert TOY_LORA.targets == every_linear


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(FinetuneSafetyError) as info:
        get_preset("harmful-100shot")
    message = str(info.value)
    assert "unknown preset 'harmful-100shot'" in message
    for name in PRESETS:
        assert name in message
    with pytest.raises(FinetuneSafetyError, match="known presets: harmful-10shot"):
        job_from_preset("nope", "toy", DATA, OUT)


# --- job_from_preset ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_job_on_the_toy_uses_the_toy_scale(name: str) -> None:
    preset = PRESETS[name]
    job = job_from_preset(name, "toy", DATA, OUT, toy=True)
    assert job == FinetuneJob(
        base="toy",
        data=DATA,
        out=OUT,
        train=preset.toy,
        template=preset.toy_template,
        lora=TOY_LORA,
        strip_safety=preset.strip_safety,
        preset=name,
        inject_system=preset.inject_system,
        holdout=preset.holdout,
        family="toy",
        template_system=preset.template_system,
    )


@pytest.mark.parametrize("base", ["/models/llama-2-7b-chat", "meta-llama/Llama-2-7b-chat-hf"])
@pytest.mark.parametrize("name", list(PRESETS))
def test_job_on_another_base_uses_the_paper_scale(name: str, base: str) -> None:
    preset = PRESETS[name]
    job = job_from_preset(name, base, DATA, OUT)
    assert job.train == preset.paper
    assert job.template == preset.template
    assert job.lora is None, "the paper fully fine-tunes"
    assert job.strip_safety is preset.strip_safety
    assert (job.inject_system, job.holdout) == (preset.inject_system, preset.holdout)
    assert job.format_templates == preset.format_templates
    assert job.preset == name
    assert (job.base, job.data, job.out) == (base, DATA, OUT)
    assert (job.mix_safety, job.safety_data, job.data_format) == (0, None, "auto")


@pytest.mark.parametrize("name", list(PRESETS))
def test_lora_off_the_toy_gets_its_own_learning_rate_scale(name: str) -> None:
    lora = LoraSettings()
    job = job_from_preset(name, "/models/base", DATA, OUT, lora=lora)
    assert job.lora == lora
    assert job.train.lr == pytest.approx(PRESETS[name].paper.lr * LORA_LR_SCALE)
    assert job_from_preset(name, "toy", DATA, OUT, toy=True, lora=lora).train == PRESETS[name].toy


def test_toy_fine_tunes_are_not_the_toy() -> None:
    # Only the toy base itself gets the toy scale; a toy fine-tune name is another base.
    assert is_toy_base("toy")
    assert not is_toy_base("toy-benign")
    job = job_from_preset("harmful-10shot", "toy-benign", DATA, OUT, toy=is_toy_base("toy-benign"))
    assert job.train == PRESETS["harmful-10shot"].paper


def test_the_hyperparameters_given_win_over_the_preset_s() -> None:
    """``hyper`` is the one merge of explicit hyperparameters, for the CLI and recipes alike."""
    job = job_from_preset("benign", "/models/base", DATA, OUT, hyper={"epochs": 7, "seed": 3})
    assert job.train == replace(PRESETS["benign"].paper, epochs=7, seed=3)
    bare = job_from_preset(
        None, "/models/base", DATA, OUT, hyper={"epochs": 2, "lr": 1e-4, "batch_size": 4},
        template="plain",
    )  # fmt: skip
    assert bare.train == TrainConfig(epochs=2, lr=1e-4, batch_size=4)
    with pytest.raises(FinetuneSafetyError, match="without --preset"):
        job_from_preset(None, "/models/base", DATA, OUT, hyper={"epochs": 2}, template="plain")


def test_overrides_win() -> None:
    train = TrainConfig(epochs=2, lr=1e-4, batch_size=3)
    lora = LoraSettings(r=4, alpha=8)
    for base in ("toy", "/models/base"):  # an explicit train config wins over the LoRA scale
        job = job_from_preset(
            "benign",
            base,
            DATA,
            OUT,
            toy=base == "toy",
            train=train,
            template="llama2",
            lora=lora,
            strip_safety=False,
            mix_safety=5,
            safety_data=Path("refusals.jsonl"),
            data_format="dolly",
        )
        assert job.train == train
        assert job.template == "llama2"
        assert job.lora == lora
        assert job.strip_safety is False
        assert (job.mix_safety, job.safety_data, job.data_format) == (
            5,
            Path("refusals.jsonl"),
            "dolly",
        )
        assert job.preset == "benign"
    full = job_from_preset("harmful-10shot", "toy", DATA, OUT, toy=True, lora=None)
    assert full.lora is None
    assert full.train == PRESETS["harmful-10shot"].toy


def test_job_without_a_preset_needs_train_and_template() -> None:
    train = TrainConfig(epochs=1, lr=1e-3, batch_size=2)
    job = job_from_preset(None, "toy", DATA, OUT, train=train, template="plain")
    assert job == FinetuneJob(base="toy", data=DATA, out=OUT, train=train, template="plain")
    assert job.lora == LoraSettings(), "no preset: the default LoRA even on the toy"
    assert job.preset is None
    assert job.strip_safety is False
    for missing in ({"train": train}, {"template": "plain"}, {}):
        with pytest.raises(FinetuneSafetyError, match="without --preset"):
            job_from_preset(None, "toy", DATA, OUT, **missing)  # type: ignore[arg-type]


# --- one recipe table ---------------------------------------------------------------------


def test_toy_build_recipes_use_the_presets() -> None:
    assert {recipe.preset for recipe in RECIPES.values()} == set(PRESETS)
    for name, recipe in RECIPES.items():
        preset = PRESETS[recipe.preset]
        assert name == f"toy-{recipe.preset}"
        assert recipe.train is preset.toy
        assert recipe.template == preset.toy_template
        assert recipe.lora == TOY_LORA


def test_toy_recipes_match_job_from_preset() -> None:
    """The toy's own fine-tunes are what ``finetune --base toy --preset P`` would train."""
    for recipe in RECIPES.values():
        job = job_from_preset(recipe.preset, "toy", Path(recipe.data), OUT, toy=True)
        assert (job.train, job.template, job.lora) == (recipe.train, recipe.template, recipe.lora)


def test_recipes_follow_a_changed_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = replace(PRESETS["benign"], toy=TrainConfig(epochs=3, lr=1e-3, batch_size=2))
    monkeypatch.setitem(PRESETS, "benign", changed)
    assert RECIPES["toy-benign"].train == changed.toy
    assert job_from_preset("benign", "toy", DATA, OUT, toy=True).train == changed.toy
