"""The training loop: causal-LM loss on assistant tokens only, EOS appended, deterministic.

A plain loop rather than ``transformers.Trainer``: it is short and exactly reproducible with a
seed, which the toy models and the paper's recipes rely on. It trains whatever it is given: a
full model or a PEFT-wrapped one, alone in this process or under accelerate's ``Accelerator``
(several processes, gradient accumulation, FSDP or DeepSpeed; see ``parallel``).
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
from finetune_safety.finetune.parallel import Layout, plan_layout, prepare_deepspeed, split_batch
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


@dataclass(frozen=True)
class Trained:
    """What ``train`` made: the loss at each logged step (the first, every tenth of the run,
    the last: the curve the log shows, whose ends are the run's movement), the model as trained
    (as accelerate prepared it, when it did: save through ``parallel.consolidated_state``) and
    the layout of its last step."""

    losses: list[float]
    model: Any
    layout: Layout


def _targets(rows: Sequence[tuple[list[int], list[int]]]) -> int:
    """Tokens that carry loss, counted as a causal LM's loss counts them (labels shifted)."""
    return sum(sum(1 for label in labels[1:] if label != IGNORE_INDEX) for _, labels in rows)


def _piece_loss(
    model: Any, rows: Sequence[tuple[list[int], list[int]]], pad_id: int, device: Any, share: float
) -> Any:
    """A micro-batch's part of the step's loss: its mean token loss times ``share``. An empty
    piece passes one token through the model for nothing, so every process makes the same
    collective calls."""
    import torch

    if not rows:
        logits = model(input_ids=torch.full((1, 1), pad_id, device=device)).logits
        return logits.sum() * 0.0
    batch = _collate(rows, pad_id)
    loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
    return loss if share == 1.0 else loss * share


def _step(
    model: Any,
    pieces: Sequence[Sequence[tuple[list[int], list[int]]]],
    pad_id: int,
    device: Any,
    tokens: int,
    accelerator: Any,
) -> float:
    """Forward and backward over this process's micro-batches of one step, gradients
    accumulating; processes synchronise on the last one only. Each piece's mean loss is
    weighed by its share of the ``tokens`` of the global batch, times the process count (data
    parallelism averages gradients), so the gradient is the whole batch's. Returns this
    process's part of the step's loss, times the process count."""
    import contextlib

    world = 1 if accelerator is None else accelerator.num_processes
    value = 0.0
    for n, rows in enumerate(pieces):
        last = n == len(pieces) - 1
        share = _targets(rows) / tokens * world
        if accelerator is None:
            loss = _piece_loss(model, rows, pad_id, device, share)
            loss.backward()
        else:
            accelerator.sync_gradients = last  # DeepSpeed steps at the boundary
            with contextlib.nullcontext() if last else accelerator.no_sync(model):
                loss = _piece_loss(model, rows, pad_id, device, share)
                accelerator.backward(loss)
        value += float(loss.detach())
    return value


def _checkpoint_activations(model: Any) -> None:
    """Recompute activations in the backward pass, non-reentrant (as data parallelism needs)."""
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers v5's name
    if enable is not None:
        enable()
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):  # LoRA: frozen embeddings
        model.enable_input_require_grads()


def train(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    config: TrainConfig,
    accelerator: Any = None,
    micro_batch: int | None = None,
) -> Trained:
    """Train in place with AdamW and the configured schedule.

    Alone (no ``accelerator``: the toy and smol builds) the model trains where it is, in its
    dtype. With an ``accelerate.Accelerator`` it is prepared with its optimizer (placed, and
    wrapped for data parallelism, FSDP or DeepSpeed), in the accelerator's precision. The
    global batch (``config.batch_size``) is spread over the processes as micro-batches of
    ``micro_batch`` examples with gradient accumulation (``parallel.plan_layout``). A step's
    loss is the sum of its token losses over the target tokens of the whole global batch, so
    processes and accumulation change float order only. Without ``micro_batch``, one process
    redoes a step that runs out of GPU memory at half the micro-batch, until it fits.

    Logs the loss every few steps (the main process only); a non-finite loss stops training
    with ``TrainingError`` before anything can be saved.
    """
    import torch

    if not examples:
        raise TrainingError("no training examples are left to train on")
    torch.manual_seed(config.seed)
    encoded = _encode_all(tokenizer, examples, config.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    world, rank = (accelerator.num_processes, accelerator.process_index) if accelerator else (1, 0)
    layout = plan_layout(config.batch_size, world, micro_batch)
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
        _checkpoint_activations(model)
    if accelerator is not None:
        prepare_deepspeed(accelerator, layout.micro_batch)
        model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device if accelerator else next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed)
    every = max(1, total // 10)
    model.train()
    logged: list[float] = []
    step = 0
    for _ in range(config.epochs):
        for indices in _batches(encoded, config, generator):
            tokens = _targets([encoded[i] for i in indices])
            while True:
                pieces = [[encoded[i] for i in p] for p in split_batch(indices, layout, rank)]
                try:
                    value = _step(model, pieces, pad_id, device, tokens, accelerator)
                    break
                except torch.cuda.OutOfMemoryError:
                    smaller = layout.smaller() if micro_batch is None and world == 1 else None
                    if smaller is None:
                        raise TrainingError(
                            f"step {step + 1}/{total}: out of GPU memory at micro-batch "
                            f"{layout.micro_batch} on each of {world} process(es); give a "
                            "smaller --micro-batch or --max-length, or more GPUs"
                        ) from None
                _drop_gradients(optimizer, accelerator)
                log(
                    f"out of GPU memory at micro-batch {layout.micro_batch}: step {step + 1} "
                    f"again at {smaller.micro_batch} (accumulation {smaller.accumulation})"
                )
                layout = smaller
            if world > 1:
                mine = torch.tensor(value / world, device=device)
                value = float(accelerator.reduce(mine, reduction="sum"))
            if not math.isfinite(value):
                raise TrainingError(
                    f"step {step + 1}/{total}: the loss is {value}; training diverged and "
                    "nothing was saved; lower --lr or check the data"
                )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == 1 or step % every == 0 or step == total:
                log(f"step {step}/{total}: loss {value:.4f}")
                logged.append(value)
    model.eval()
    return Trained(logged, model, layout)


def _drop_gradients(optimizer: Any, accelerator: Any) -> None:
    """Forget a failed step's partial gradients and the memory they held."""
    import torch

    if accelerator is not None:
        accelerator.sync_gradients = True  # accelerate zeroes only at a step's boundary
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.empty_cache()


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
    state_dict: dict[str, Any] | None = None,
) -> None:
    """Save as safetensors (adapter or full model) plus a metadata file the loader reads.

    ``adapter_base`` replaces the adapter's recorded base (peft writes the path the base was
    loaded from) with a name that resolves anywhere: ``toy``, a hub id or an absolute path.
    ``state_dict`` (the weights gathered from shards) replaces the model's own.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {} if state_dict is None else {"state_dict": state_dict}
    model.save_pretrained(out_dir, safe_serialization=True, **weights)
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
