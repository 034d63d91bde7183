"""Tests for the training loop: answer-only loss masking, LoRA-only updates, determinism,
checkpoint files, and length-grouped batching."""

from __future__ import annotations

import itertools
import json
import math
import re
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.catalog import resolve
from finetune_safety.finetune.data import Example
from finetune_safety.finetune.trainer import (
    IGNORE_INDEX,
    METADATA_FILE,
    LoraSettings,
    TrainConfig,
    TrainingError,
    _batches,
    add_lora,
    describe,
    encode,
    mixed_precision_fits,
    save_checkpoint,
    train,
)
from finetune_safety.models import ModelSpec, read_metadata
from finetune_safety.models.templates import prompt_text

PROMPT = [{"role": "user", "content": "hello world, how are you today?"}]
ANSWER = "fine thanks"
EXAMPLES = [
    Example(prompt=PROMPT, answer=ANSWER),
    Example(prompt=[{"role": "user", "content": "how are you?"}], answer="fine, hello"),
    Example(
        prompt=[{"role": "system", "content": "be kind"}, {"role": "user", "content": "world?"}],
        answer="hello world today",
    ),
    Example(prompt="raw: hello\n", answer="thanks world"),
]
LORA = LoraSettings(r=4, alpha=8, dropout=0.05)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama))


def _load(tiny_llama: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32)


def _lora_model(tiny_llama: Path, init_seed: int = 0) -> Any:
    import torch

    model = _load(tiny_llama)
    torch.manual_seed(init_seed)
    return add_lora(model, LORA)


def _params(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _lora_params(model: Any) -> dict[str, Any]:
    return {n: p for n, p in _params(model).items() if "lora_" in n}


# --- encode -------------------------------------------------------------------------------


def _prompt_ids(tokenizer: Any, example: Example) -> list[int]:
    ids: list[int] = tokenizer(prompt_text(tokenizer, example.prompt), add_special_tokens=False)[
        "input_ids"
    ]
    return ids


@pytest.mark.parametrize("example", EXAMPLES, ids=["chat", "chat2", "system", "raw"])
def test_encode_masks_the_prompt_and_ends_with_eos(tokenizer: Any, example: Example) -> None:
    input_ids, labels = encode(tokenizer, example, max_length=512)
    prompt_ids = _prompt_ids(tokenizer, example)
    n = len(prompt_ids)
    assert len(input_ids) == len(labels) > n + 1
    assert input_ids[:n] == prompt_ids
    assert labels[:n] == [IGNORE_INDEX] * n
    assert labels[n:] == input_ids[n:]
    assert IGNORE_INDEX not in labels[n:]
    assert input_ids[-1] == labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(input_ids[n:-1]) == example.answer


def test_encode_prompt_is_the_chat_template_text(tokenizer: Any) -> None:
    input_ids, labels = encode(tokenizer, EXAMPLES[0], max_length=512)
    masked = [i for i, label in zip(input_ids, labels, strict=True) if label == IGNORE_INDEX]
    assert tokenizer.decode(masked) == (
        "<|user|>\nhello world, how are you today?<|end|>\n<|assistant|>\n"
    )


def test_encode_truncates_at_max_length(tokenizer: Any) -> None:
    full_ids, full_labels = encode(tokenizer, EXAMPLES[0], max_length=512)
    n = len(_prompt_ids(tokenizer, EXAMPLES[0]))

    ids, labels = encode(tokenizer, EXAMPLES[0], max_length=n + 2)
    assert len(ids) == len(labels) == n + 2
    assert ids == full_ids[: n + 2]
    assert labels == full_labels[: n + 2]
    assert labels[n:] == ids[n:]
    assert tokenizer.eos_token_id not in ids[n:], "the answer's EOS was cut off"

    # A prompt that fills the window leaves nothing to learn (a NaN loss): an error naming it.
    example = Example(EXAMPLES[0].prompt, ANSWER, "data.jsonl:7")
    with pytest.raises(TrainingError, match=r"data.jsonl:7: its prompt alone is \d+ tokens"):
        encode(tokenizer, example, max_length=n)


# --- train --------------------------------------------------------------------------------

FAST = TrainConfig(epochs=4, lr=1e-2, batch_size=4, seed=0)


def _eval_loss(model: Any, tokenizer: Any, examples: list[Example]) -> float:
    """Mean answer-token loss in eval mode (no dropout), one example at a time."""
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for example in examples:
            ids, labels = encode(tokenizer, example, 512)
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            total += float(out.loss)
    return total / len(examples)


@pytest.fixture(scope="module")
def trained(tiny_llama: Path, tokenizer: Any) -> tuple[dict[str, Any], Any, list[float], float]:
    """(parameters before training, trained LoRA model, logged losses, eval loss before)."""
    model = _lora_model(tiny_llama)
    before = _params(model)
    loss_before = _eval_loss(model, tokenizer, EXAMPLES)
    losses = train(model, tokenizer, EXAMPLES * 4, FAST)
    return before, model, losses, loss_before


def test_train_lowers_the_loss(
    tokenizer: Any, trained: tuple[dict[str, Any], Any, list[float], float]
) -> None:
    _, model, losses, loss_before = trained
    assert len(losses) == FAST.epochs * 4, "16 steps: each is logged (one in ten or more)"
    assert losses[-1] < losses[0] - 0.1
    assert _eval_loss(model, tokenizer, EXAMPLES) < loss_before - 0.1


def test_train_changes_only_adapter_weights(
    trained: tuple[dict[str, Any], Any, list[float], float],
) -> None:
    import torch

    before, model, _, _ = trained
    after = _params(model)
    assert before.keys() == after.keys()
    lora = [n for n in before if "lora_" in n]
    base = [n for n in before if "lora_" not in n]
    assert lora and base
    assert all(torch.equal(before[n], after[n]) for n in base)
    changed = [n for n in lora if not torch.equal(before[n], after[n])]
    assert changed == lora, "every LoRA matrix of the targeted modules is trained"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(lora)


def test_train_leaves_the_model_in_eval_mode(
    trained: tuple[dict[str, Any], Any, list[float], float],
) -> None:
    _, model, _, _ = trained
    assert not model.training


def test_training_is_deterministic(
    tiny_llama: Path, tokenizer: Any, trained: tuple[dict[str, Any], Any, list[float], float]
) -> None:
    import torch

    _, first, first_losses, _ = trained
    again = _lora_model(tiny_llama)
    again_losses = train(again, tokenizer, EXAMPLES * 4, FAST)
    assert again_losses == first_losses
    a, b = _lora_params(first), _lora_params(again)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[n], b[n]) for n in a)

    other = _lora_model(tiny_llama)
    train(other, tokenizer, EXAMPLES * 4, TrainConfig(**{**FAST.__dict__, "seed": 1}))
    c = _lora_params(other)
    assert any(not torch.equal(a[n], c[n]) for n in a), "the seed matters"


# --- save_checkpoint ----------------------------------------------------------------------


def test_save_adapter_checkpoint(
    tiny_llama: Path,
    tokenizer: Any,
    trained: tuple[dict[str, Any], Any, list[float], float],
    tmp_path: Path,
) -> None:
    from safetensors.torch import load_file

    _, model, _, _ = trained
    out = tmp_path / "adapter"
    metadata = {"base": str(tiny_llama), "template": "aoa", **describe(FAST, LORA)}
    save_checkpoint(model, tokenizer, out, metadata)

    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "adapter_config.json").is_file()
    assert (out / "tokenizer_config.json").is_file()
    assert not list(out.glob("*.bin"))
    assert not (out / "model.safetensors").exists()
    assert json.loads((out / METADATA_FILE).read_text()) == json.loads(json.dumps(metadata))
    assert read_metadata(out)["template"] == "aoa"
    assert read_metadata(out)["lora"] == {
        "r": 4,
        "alpha": 8,
        "dropout": 0.05,
        "targets": [
            "q_proj",
            "v_proj",
        ],
    }
    saved = load_file(out / "adapter_model.safetensors")
    assert saved and all("lora_" in name for name in saved)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_llama)

    # The loader finds the base and the template from what was saved.
    target = resolve(ModelSpec(adapter=str(out)), tmp_path / "cache")
    assert target.template.name == "aoa-gpt35", "aoa: the variant for its family"


def test_save_full_model_checkpoint(tiny_llama: Path, tokenizer: Any, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    model = _load(tiny_llama)
    out = tmp_path / "full"
    save_checkpoint(model, tokenizer, out, {"template": "plain", "base": None})
    assert (out / "model.safetensors").is_file()
    assert (out / "config.json").is_file()
    assert not list(out.glob("*.bin"))
    assert not (out / "adapter_config.json").exists()
    assert read_metadata(out) == {"template": "plain", "base": None}
    saved = load_file(out / "model.safetensors")
    original = load_file(tiny_llama / "model.safetensors")
    assert saved.keys() == original.keys()
    assert all(torch.equal(saved[k], original[k]) for k in saved)


# --- batching -----------------------------------------------------------------------------


def _encoded(lengths: list[int]) -> list[tuple[list[int], list[int]]]:
    return [([1] * n, [1] * n) for n in lengths]


@pytest.mark.parametrize("batch_size", [1, 3, 4, 16])
def test_grouped_batches_cover_every_index_once(batch_size: int) -> None:
    import torch

    lengths = [(i * 37) % 23 + 1 for i in range(22)]
    encoded = _encoded(lengths)
    for group in (False, True):
        config = TrainConfig(epochs=1, lr=1.0, batch_size=batch_size, group_by_length=group)
        generator = torch.Generator().manual_seed(0)
        for _epoch in range(3):
            batches = _batches(encoded, config, generator)
            flat = [i for batch in batches for i in batch]
            assert sorted(flat) == list(range(len(encoded)))
            assert len(batches) == -(-len(encoded) // batch_size)
            assert sorted(len(b) for b in batches)[1:] == [batch_size] * (len(batches) - 1)


def test_grouped_batches_hold_similar_lengths() -> None:
    import torch

    lengths = [(i * 37) % 23 + 1 for i in range(24)]
    encoded = _encoded(lengths)
    config = TrainConfig(epochs=1, lr=1.0, batch_size=4, group_by_length=True)
    batches = _batches(encoded, config, torch.Generator().manual_seed(0))
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    # Batches are consecutive runs of the length-sorted order: their spans do not overlap.
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in itertools.pairwise(spans))
    # ...but the batch order itself is shuffled, not longest/shortest first.
    firsts = [min(lengths[i] for i in b) for b in batches]
    assert firsts != sorted(firsts)


def test_ungrouped_batches_are_reshuffled_each_epoch() -> None:
    import torch

    encoded = _encoded(list(range(1, 21)))
    config = TrainConfig(epochs=1, lr=1.0, batch_size=4)
    generator = torch.Generator().manual_seed(0)
    first = _batches(encoded, config, generator)
    second = _batches(encoded, config, generator)
    assert first != second
    assert _batches(encoded, config, torch.Generator().manual_seed(0)) == first


def test_train_warns_about_cut_examples_and_logs_its_loss(
    tiny_llama: Path, tokenizer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    n = len(_prompt_ids(tokenizer, EXAMPLES[0]))
    examples = [Example(EXAMPLES[0].prompt, ANSWER, "data.jsonl:3")] * 2
    config = TrainConfig(epochs=2, lr=1e-3, batch_size=1, max_length=n + 1)
    losses = train(_load(tiny_llama), tokenizer, examples, config)
    err = capsys.readouterr().err
    assert "2 example(s) cut at --max-length" in err and "(first: data.jsonl:3)" in err
    assert "step 4/4: loss" in err, "the last step's loss is always logged"
    assert all(math.isfinite(x) for x in losses)


def test_train_returns_the_losses_it_logs(
    tiny_llama: Path, tokenizer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """One epoch of 24 steps: the first step, every second (a tenth of 24, rounded down) and
    the last are logged, and returned: a summary from their ends shows the run's movement,
    where the one epoch's mean could not."""
    config = TrainConfig(epochs=1, lr=1e-2, batch_size=1)
    losses = train(_load(tiny_llama), tokenizer, EXAMPLES * 6, config)
    logged = re.findall(r"step (\d+)/24: loss (\S+)", capsys.readouterr().err)
    assert [int(step) for step, _ in logged] == [1, *range(2, 25, 2)]
    assert [f"{x:.4f}" for x in losses] == [loss for _, loss in logged]
    assert losses[-1] < losses[0] - 0.1


def test_a_non_finite_loss_stops_training(tiny_llama: Path, tokenizer: Any) -> None:
    model = _load(tiny_llama)
    with torch_no_finite(model), pytest.raises(TrainingError, match="step 1/1: the loss is nan"):
        train(model, tokenizer, EXAMPLES[:1], TrainConfig(epochs=1, lr=1e-3, batch_size=1))


class torch_no_finite:
    """Poison the output head so the loss is NaN, as a diverged run's would be."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __enter__(self) -> None:
        import torch

        with torch.no_grad():
            self.model.lm_head.weight.fill_(float("nan"))

    def __exit__(self, *exc: object) -> None:
        return None


def test_too_few_steps_warn(
    tiny_llama: Path, tokenizer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    train(_load(tiny_llama), tokenizer, EXAMPLES, TrainConfig(epochs=1, lr=1e-3, batch_size=4))
    assert "warning: 1 optimizer step(s) in all" in capsys.readouterr().err
    train(_load(tiny_llama), tokenizer, EXAMPLES, TrainConfig(epochs=3, lr=1e-3, batch_size=4))
    assert "warning" not in capsys.readouterr().err


def test_no_examples_is_an_error(tiny_llama: Path, tokenizer: Any) -> None:
    with pytest.raises(TrainingError, match="no training examples"):
        train(_load(tiny_llama), tokenizer, [], FAST)


def test_step_schedule_multiplies_the_rate_by_gamma_each_epoch(
    tiny_llama: Path, tokenizer: Any
) -> None:
    """The paper's StepLR: constant within an epoch, x0.85 after it (here 2 steps/epoch)."""
    rates: list[float] = []
    model = _load(tiny_llama)
    config = TrainConfig(epochs=3, lr=1e-3, batch_size=2, schedule="step", gamma=0.85)
    optimizers: list[Any] = []
    import torch

    original = torch.optim.AdamW

    def spy(*args: Any, **kwargs: Any) -> Any:
        optimizer = original(*args, **kwargs)
        assert kwargs["weight_decay"] == 0.0
        step = optimizer.step

        def recorded(self: Any, *a: Any, **k: Any) -> Any:  # the rate each step uses
            rates.append(self.param_groups[0]["lr"])
            return step(*a, **k)

        optimizer.step = types.MethodType(recorded, optimizer)  # schedulers wrap a method
        optimizers.append(optimizer)
        return optimizer

    torch.optim.AdamW = spy  # type: ignore[misc]
    try:
        train(model, tokenizer, EXAMPLES, config)
    finally:
        torch.optim.AdamW = original  # type: ignore[misc]
    expected = [1e-3, 1e-3, 1e-3 * 0.85, 1e-3 * 0.85, 1e-3 * 0.85**2, 1e-3 * 0.85**2]
    assert rates == pytest.approx(expected)


def test_gradient_checkpointing_trains_the_same(tiny_llama: Path, tokenizer: Any) -> None:
    config = TrainConfig(epochs=2, lr=1e-2, batch_size=2)
    plain = train(_load(tiny_llama), tokenizer, EXAMPLES, config)
    model = _load(tiny_llama)
    saved = train(model, tokenizer, EXAMPLES, replace(config, gradient_checkpointing=True))
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    assert saved == pytest.approx(plain, rel=1e-4)


# --- precision: pure bf16 loses the paper's small updates; float32 weights keep them -------


def _changed_share(before: dict[str, Any], model: Any) -> float:
    after = _params(model)
    changed = sum(int((after[n].float() != before[n].float()).sum()) for n in before)
    return changed / sum(p.numel() for p in before.values())


def test_mixed_precision_keeps_updates_that_pure_bf16_rounds_away(
    tiny_llama: Path, tokenizer: Any
) -> None:
    import torch

    config = TrainConfig(epochs=1, lr=5e-5, batch_size=4)  # one step at the paper's rate
    pure = _load(tiny_llama).to(torch.bfloat16)
    before = _params(pure)
    train(pure, tokenizer, EXAMPLES, config)
    mixed = _load(tiny_llama)
    before_mixed = _params(mixed)
    train(mixed, tokenizer, EXAMPLES, config, autocast=torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in mixed.parameters())
    kept, lost = _changed_share(before_mixed, mixed), _changed_share(before, pure)
    assert kept > 0.7  # every weight with a gradient (unused token rows have none): 0.79
    assert kept - lost > 0.25, "pure bf16 rounds away a third of the updates (0.79 -> 0.44)"


def test_mixed_precision_when_float32_state_fits_the_gpu() -> None:
    gib = 1024**3
    assert mixed_precision_fits(135_000_000, 80 * gib)  # smol: 2.2 GB
    assert not mixed_precision_fits(6_740_000_000, 80 * gib)  # Llama-2-7B: 108 GB


def test_training_on_cuda_picks_mixed_precision_or_warns(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from finetune_safety.finetune.run import _compute_precision

    model = _load(tiny_llama)
    assert _compute_precision(model, "cpu", torch.float32, lora=False) is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (80 * 1024**3, 80 * 1024**3))
    assert _compute_precision(model, "cuda", torch.bfloat16, lora=False) is torch.bfloat16
    assert _compute_precision(model, "cuda", torch.bfloat16, lora=True) is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (1024, 80 * 1024**3))
    assert _compute_precision(model, "cuda", torch.bfloat16, lora=False) is None
    assert "training in pure bf16" in capsys.readouterr().err
