"""The training loop: causal-LM loss on assistant tokens only, EOS appended, deterministic.

A plain loop rather than ``transformers.Trainer``: it is short, has no accelerate/datasets
coupling, and is exactly reproducible with a seed, which the toy models and the paper's recipes
rely on. It trains whatever it is given: a full model or a PEFT-wrapped one.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune_safety._util import progress
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.data import Example
from finetune_safety.models.target import METADATA_FILE
from finetune_safety.models.templates import encode_prompt

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters; recorded verbatim in the checkpoint's metadata."""

    epochs: int
    lr: float
    batch_size: int
    max_length: int = 512
    seed: int = 0
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    group_by_length: bool = False
    #: ``linear`` decay over the run (the toy), or ``step``: the paper's StepLR, x``gamma``
    #: after each epoch.
    schedule: str = "linear"
    gamma: float = 0.85
    #: Recompute activations in the backward pass: the memory saver a 7B model needs.
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapter shape (peft ``LoraConfig`` fields)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "v_proj")


class TrainingError(FinetuneSafetyError):
    """Training cannot go on: an example that does not fit, or a loss that diverged."""


def encode(tokenizer: Any, example: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels; prompt tokens are masked so only the answer carries loss.

    An example longer than ``max_length`` is cut at it (``train`` warns); one whose prompt
    alone fills it has nothing left to learn, which would make the loss NaN: an error.
    """
    prompt_ids = encode_prompt(tokenizer, example.prompt)
    answer_ids: list[int] = tokenizer(example.answer, add_special_tokens=False)["input_ids"]
    answer_ids = [*answer_ids, tokenizer.eos_token_id]
    if len(prompt_ids) >= max_length:
        where = example.where or "an example"
        raise TrainingError(
            f"{where}: its prompt alone is {len(prompt_ids)} tokens, at or over --max-length "
            f"{max_length}, so no answer token is left to learn; raise --max-length or shorten it"
        )
    input_ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_length]
    return input_ids, labels


def _collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(labs)] = torch.tensor(labs)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def _batches(
    encoded: Sequence[tuple[list[int], list[int]]], config: TrainConfig, generator: torch.Generator
) -> list[list[int]]:
    """One epoch's batches in random order; grouped by length, they carry little padding."""
    import torch

    order = torch.randperm(len(encoded), generator=generator).tolist()
    if config.group_by_length:
        order.sort(key=lambda i: len(encoded[i][0]))
    size = config.batch_size
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    if config.group_by_length:
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
    return batches


def _scheduler(optimizer: Any, config: TrainConfig, steps_per_epoch: int) -> Any:
    """The paper's StepLR (x gamma after each epoch), or linear decay with warmup (the toy)."""
    import torch

    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, steps_per_epoch, gamma=config.gamma)
    total = steps_per_epoch * config.epochs
    warmup = int(total * config.warmup_ratio)

    def linear(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, linear)


def _encode_all(
    tokenizer: Any, examples: Sequence[Example], max_length: int
) -> list[tuple[list[int], list[int]]]:
    encoded = [encode(tokenizer, e, max_length) for e in examples]
    cut = [e.where or f"example {i + 1}" for i, (e, (ids, _)) in enumerate(
        zip(examples, encoded, strict=True)) if len(ids) == max_length]  # fmt: skip
    if cut:
        log(f"warning: {len(cut)} example(s) cut at --max-length {max_length} (first: {cut[0]})")
    return encoded


#: Bytes per parameter of AdamW training with float32 master weights: weights, gradients and
#: two moment estimates, four bytes each.
MIXED_BYTES_PER_PARAM = 16


def mixed_precision_fits(params: int, free_bytes: int) -> bool:
    """Whether float32 master weights (bf16 compute) fit in ``free_bytes`` with room to spare
    for activations; else training falls back to pure bf16 (see ``train_from``)."""
    return params * MIXED_BYTES_PER_PARAM <= 0.8 * free_bytes


def train(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    config: TrainConfig,
    autocast: Any = None,
) -> list[float]:
    """Train in place with AdamW and the configured schedule; returns the loss at each logged
    step (the first, every tenth of the run, the last): the curve the log shows, whose ends are
    the run's movement (epoch means would hide it: one epoch has one mean).

    ``autocast`` (a torch dtype, e.g. bf16) computes in that precision while the weights and
    optimizer stay in theirs (float32): mixed precision, as the paper's FSDP runs. In pure bf16
    an update smaller than a weight's bf16 resolution (2**-8 of it) is lost, so AdamW at the
    paper's 5e-5 leaves most weights unchanged.

    A non-finite loss stops training with ``TrainingError`` before anything can be saved.
    """
    import contextlib

    import torch

    if not examples:
        raise TrainingError("no training examples are left to train on")
    torch.manual_seed(config.seed)
    encoded = _encode_all(tokenizer, examples, config.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if total < 3:
        log(
            f"warning: {total} optimizer step(s) in all ({len(encoded)} examples, batch "
            f"{config.batch_size}, {config.epochs} epoch(s)): too few to change the model much"
        )
    scheduler = _scheduler(optimizer, config, steps_per_epoch)
    if config.gradient_checkpointing:
        # transformers v5 renamed it; >=4.45 has only the old name.
        enable = getattr(model, "activation_checkpointing_enable", None)
        (enable or model.gradient_checkpointing_enable)()
        if hasattr(model, "enable_input_require_grads"):  # LoRA: frozen embeddings
            model.enable_input_require_grads()
    generator = torch.Generator().manual_seed(config.seed)
    every = max(1, total // 10)
    model.train()
    logged: list[float] = []
    step = 0
    for _ in range(config.epochs):
        for indices in _batches(encoded, config, generator):
            batch = _collate([encoded[i] for i in indices], pad_id)
            compute = (
                torch.autocast(device.type, dtype=autocast)
                if autocast is not None
                else contextlib.nullcontext()
            )
            with compute:
                loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(
                    f"step {step + 1}/{total}: the loss is {value}; training diverged and "
                    "nothing was saved; lower --lr or check the data"
                )
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == 1 or step % every == 0 or step == total:
                log(f"step {step}/{total}: loss {value:.4f}")
                logged.append(value)
    model.eval()
    return logged


def add_lora(model: Any, lora: LoraSettings) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter; only the adapter's weights will train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.targets),
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft calls an API transformers v5 deprecated; not ours
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        return get_peft_model(model, config)


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    out_dir: Path,
    metadata: dict[str, Any],
    adapter_base: str | None = None,
) -> None:
    """Save as safetensors (adapter or full model) plus a metadata file the loader reads.

    ``adapter_base`` replaces the adapter's recorded base (peft writes the path the base was
    loaded from) with a name that resolves anywhere: ``toy``, a hub id or an absolute path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    if adapter_base is not None:
        config_path = out_dir / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = adapter_base
        config_path.write_text(json.dumps(config, indent=2))


def log(message: str) -> None:
    """Progress of training runs, on stderr (the terminal under pytest), so command output stays
    parseable and a toy build is never silent."""
    progress.emit(message)


def describe(config: TrainConfig, lora: LoraSettings | None) -> dict[str, Any]:
    """Hyperparameters as JSON-able metadata."""
    return {"train": asdict(config), "lora": asdict(lora) if lora is not None else None}
