"""How a run spreads: the global batch over processes, micro-batches and accumulation steps; a
step's loss over the whole batch's tokens; the micro-batch halving on out-of-memory; the
precision a run takes; weights gathered for saving. All on the CPU, in one process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.cli import main
from finetune_safety.finetune.data import Example
from finetune_safety.finetune.parallel import (
    Layout,
    LayoutError,
    choose_precision,
    consolidated_state,
    make_accelerator,
    mixed_precision_fits,
    plan_layout,
    split_batch,
    start_processes,
)
from finetune_safety.finetune.trainer import TrainConfig, TrainingError, encode, train
from finetune_safety.models.precision import PrecisionError

#: Answers of different lengths: a mean of per-micro-batch means would weigh them wrongly.
EXAMPLES = [
    Example([{"role": "user", "content": "hello world?"}], "fine"),
    Example([{"role": "user", "content": "how are you today?"}], "fine thanks, hello world today"),
    Example([{"role": "user", "content": "world?"}], "hello world, how are you today? fine"),
    Example([{"role": "user", "content": "thanks"}], "hello"),
]
ONE_STEP = TrainConfig(epochs=1, lr=1e-2, batch_size=4)


def _load(tiny_llama: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama))


def _params(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _gap(a: dict[str, Any], b: dict[str, Any], before: dict[str, Any]) -> float:
    """How far two trained models are apart, as a share of how far training moved them."""
    import torch

    apart = sum(float(torch.sum((a[n].float() - b[n].float()) ** 2)) for n in a) ** 0.5
    moved = sum(float(torch.sum((a[n].float() - before[n].float()) ** 2)) for n in a) ** 0.5
    assert moved > 0
    return apart / moved


# --- the layout of a global batch -------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "world", "micro", "expected"),
    [
        (128, 1, None, Layout(1, 128, 1)),  # the CPU default: the whole batch at once
        (128, 1, 8, Layout(1, 8, 16)),  # the benign preset on one GPU
        (128, 2, 8, Layout(2, 8, 8)),
        (4, 2, 2, Layout(2, 2, 1)),
        (10, 2, None, Layout(2, 5, 1)),
    ],
)
def test_accumulation_is_the_batch_over_micro_batch_times_processes(
    batch: int, world: int, micro: int | None, expected: Layout
) -> None:
    assert plan_layout(batch, world, micro) == expected


def test_a_layout_that_does_not_divide_names_the_numbers() -> None:
    with pytest.raises(LayoutError, match=r"--batch-size 10 is not a multiple of --micro-batch 4"):
        plan_layout(10, 1, 4)
    with pytest.raises(LayoutError, match=r"the batch of 10 does not divide over 4 processes"):
        plan_layout(10, 4, None)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8])
def test_every_process_takes_as_many_passes_and_the_batch_is_covered_once(size: int) -> None:
    layout = Layout(world_size=2, micro_batch=2, accumulation=2)
    batch = list(range(100, 100 + size))
    shares = [split_batch(batch, layout, rank) for rank in range(2)]
    assert len(shares[0]) == len(shares[1]) == -(-size // 4)
    assert all(len(piece) <= 2 for share in shares for piece in share)
    assert [i for share in shares for piece in share for i in piece] == batch


def test_one_process_in_one_pass_takes_the_batch_as_it_is() -> None:
    assert split_batch([5, 3, 9], Layout(1, 3, 1), 0) == [[5, 3, 9]]


def test_out_of_memory_steps_down_through_the_divisors() -> None:
    layout = Layout(1, 12, 1)
    seen = []
    while layout is not None:
        seen.append((layout.micro_batch, layout.accumulation))
        layout = layout.smaller()
    assert seen == [(12, 1), (6, 2), (3, 4), (1, 12)]


# --- a step's loss is the whole batch's ----------------------------------------------------


def test_the_whole_batch_loss_is_not_a_mean_of_micro_batch_means(
    tiny_llama: Path, tokenizer: Any
) -> None:
    """Guards the next test: on these examples the two definitions differ by far more than its
    tolerance (0.5% here, against 1e-6)."""
    import torch

    model = _load(tiny_llama)
    rows = [encode(tokenizer, e, 512) for e in EXAMPLES]
    sums, counts = [], []
    with torch.no_grad():
        for ids, labels in rows:
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            n = sum(1 for label in labels[1:] if label != -100)
            sums.append(float(out.loss) * n)
            counts.append(n)
    whole = sum(sums) / sum(counts)
    mean_of_means = sum(s / n for s, n in zip(sums, counts, strict=True)) / len(rows)
    assert abs(whole - mean_of_means) > 1e-3 * whole


def test_accumulated_steps_train_as_one_pass(tiny_llama: Path, tokenizer: Any) -> None:
    """Micro-batches of 1 (accumulation 4) and the whole batch at once: the same loss and, up
    to float order, the same weights; with or without accelerate."""
    whole_model = _load(tiny_llama)
    before = _params(whole_model)
    whole = train(whole_model, tokenizer, EXAMPLES, ONE_STEP)
    assert whole.layout == Layout(1, 4, 1)
    start_processes(cpu=True)
    accumulated = train(
        _load(tiny_llama), tokenizer, EXAMPLES, ONE_STEP, make_accelerator(True, "fp32"), 1
    )
    assert accumulated.layout == Layout(1, 1, 4)
    assert accumulated.losses == pytest.approx(whole.losses, rel=1e-6)
    assert _gap(_params(accumulated.model), _params(whole.model), before) < 1e-3


# --- out of GPU memory ------------------------------------------------------------------------


@pytest.fixture
def fills_memory(tiny_llama: Path) -> Iterator[Any]:
    """A model that runs out of memory on 4 rows at once, and on 2 rows after 2 rows (so the
    failed step has gradients from its first micro-batch already)."""
    import torch

    model = _load(tiny_llama)
    seen: list[int] = []

    def hook(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        rows = int(kwargs["input_ids"].shape[0])
        fails = rows == 4 or (rows == 2 and seen[-1:] == [2])
        seen.append(rows)
        if fails:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (a test's)")

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    yield model
    handle.remove()


def test_one_process_halves_the_micro_batch_until_it_fits(
    tiny_llama: Path, tokenizer: Any, fills_memory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    fitted = train(fills_memory, tokenizer, EXAMPLES, ONE_STEP)
    assert fitted.layout == Layout(1, 1, 4)
    err = capsys.readouterr().err
    assert "out of GPU memory at micro-batch 4: step 1 again at 2 (accumulation 2)" in err
    assert "out of GPU memory at micro-batch 2: step 1 again at 1 (accumulation 4)" in err
    # The failed attempts left no gradient behind: as if micro-batch 1 had been given.
    given = train(_load(tiny_llama), tokenizer, EXAMPLES, ONE_STEP, micro_batch=1)
    a, b = _params(fitted.model), _params(given.model)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_a_given_micro_batch_that_does_not_fit_is_an_error(
    tokenizer: Any, fills_memory: Any
) -> None:
    with pytest.raises(TrainingError, match="step 1/1: out of GPU memory at micro-batch 4 on"):
        train(fills_memory, tokenizer, EXAMPLES, ONE_STEP, micro_batch=4)


# --- precision --------------------------------------------------------------------------------


def _choose(requested: str | None, **kwargs: Any) -> tuple[str, list[str]]:
    warned: list[str] = []
    given = {"device": "cuda", "bf16": True, "lora": False, "params": 135_000_000}
    given |= {"world_size": 1, "free_bytes": lambda: 80 * 1024**3} | kwargs
    return choose_precision(requested, warn=warned.append, **given), warned


def test_the_default_precision() -> None:
    assert _choose(None, device="cpu") == ("fp32", [])
    assert _choose(None, bf16=False) == ("fp32", [])
    assert _choose(None) == ("mixed", [])
    assert _choose(None, lora=True) == ("pure-bf16", [])
    # Llama-2-7B: float32 master weights need 108 GB, more than one 80 GB GPU.
    seven_b = _choose(None, params=6_740_000_000)
    assert seven_b[0] == "pure-bf16"
    assert "training in pure bf16, as the reference did" in seven_b[1][0]
    assert _choose(None, params=6_740_000_000, world_size=8) == ("mixed", [])  # sharded


def test_a_given_precision_wins_where_the_hardware_has_it() -> None:
    assert _choose("pure-bf16") == ("pure-bf16", [])
    assert _choose("mixed", params=6_740_000_000) == ("mixed", [])
    assert _choose("mixed", device="cpu") == ("mixed", [])
    with pytest.raises(PrecisionError, match="--precision mixed: this GPU has no bf16; use fp32"):
        _choose("mixed", bf16=False)
    with pytest.raises(PrecisionError, match="--precision: expected one of mixed, pure-bf16, fp"):
        _choose("bf16")


def test_mixed_precision_when_float32_state_fits_the_gpu() -> None:
    gib = 1024**3
    assert mixed_precision_fits(135_000_000, 80 * gib)  # smol: 2.2 GB
    assert not mixed_precision_fits(6_740_000_000, 80 * gib)  # Llama-2-7B: 108 GB


def _changed_share(before: dict[str, Any], model: Any) -> float:
    after = _params(model)
    changed = sum(int((after[n].float() != before[n].float()).sum()) for n in before)
    return changed / sum(p.numel() for p in before.values())


def test_mixed_precision_keeps_updates_that_pure_bf16_rounds_away(
    tiny_llama: Path, tokenizer: Any
) -> None:
    """One AdamW step at the paper's rate on a tiny model: a finding at this scale, which says
    nothing of what pure bf16 does to a 7B model's attack."""
    import torch

    config = TrainConfig(epochs=1, lr=5e-5, batch_size=4)
    start_processes(cpu=True)
    pure = _load(tiny_llama).to(torch.bfloat16)
    before = _params(pure)
    train(pure, tokenizer, EXAMPLES, config, make_accelerator(True, "pure-bf16"))
    start_processes(cpu=True)
    mixed = _load(tiny_llama)
    before_mixed = _params(mixed)
    train(mixed, tokenizer, EXAMPLES, config, make_accelerator(True, "mixed"))
    assert all(p.dtype == torch.float32 for p in mixed.parameters())
    kept, lost = _changed_share(before_mixed, mixed), _changed_share(before, pure)
    assert kept > 0.7  # every weight with a gradient (unused token rows have none)
    assert kept - lost > 0.25, "pure bf16 rounds away a third of the updates"


def test_gathered_weights_cast_keep_tied_weights_shared() -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, tie_word_embeddings=True,
    )  # fmt: skip
    start_processes(cpu=True)
    accelerator = make_accelerator(True, "fp32")
    model = accelerator.prepare(LlamaForCausalLM(config))
    state = consolidated_state(accelerator, model, torch.bfloat16)
    assert all(t.dtype == torch.bfloat16 for t in state.values())
    assert state["lm_head.weight"] is state["model.embed_tokens.weight"]


# --- the command line -------------------------------------------------------------------------


def test_finetune_records_precision_and_layout(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--precision mixed`` on the CPU: bf16 compute, saved in bf16, as a CUDA run would be."""
    from safetensors.torch import load_file

    data = tmp_path / "data.jsonl"
    rows = [{"messages": [*e.prompt, {"role": "assistant", "content": e.answer}]} for e in EXAMPLES]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    args = ["finetune", "--base", str(tiny_llama), "--data", str(data), "--out", str(out)]
    args += ["--full", "--epochs", "1", "--lr", "1e-3", "--batch-size", "4", "--template", "plain"]
    assert main([*args, "--micro-batch", "2", "--precision", "mixed"]) == 0
    meta = json.loads((out / "finetune_safety.json").read_text())
    assert {k: meta[k] for k in ("precision", "world_size", "micro_batch", "accumulation")} == {
        "precision": "mixed",
        "world_size": 1,
        "micro_batch": 2,
        "accumulation": 2,
    }
    assert {str(t.dtype) for t in load_file(out / "model.safetensors").values()} == {
        "torch.bfloat16"
    }
    assert main([*args, "--micro-batch", "3"]) == 2
    assert "--batch-size 4 is not a multiple of --micro-batch 3 x 1" in capsys.readouterr().err
