"""``finetune-safety finetune``: make a checkpoint the suite can test, from a base and a data set.

Loss on assistant tokens only, EOS appended, the full model (or a LoRA adapter) saved as
safetensors with a metadata file recording base, data digest, hyperparameters, template,
precision and how the batch was spread, so ``--safety-checkpoint mine=DIR`` evaluates it with
the template it was trained with. One process or several (``torchrun``, ``accelerate launch``),
on the CPU or CUDA, as launched. A base may be a GGUF file (dequantized on load).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.data import (
    DEFAULT_FILTER,
    Example,
    detect_format,
    digest,
    load_chat_jsonl,
    load_training_data,
    with_system,
)
from finetune_safety.finetune.parallel import (
    check_precision,
    choose_precision,
    consolidated_state,
    launched_world_size,
    main_process_speaks,
    make_accelerator,
    plan_layout,
    start_processes,
)
from finetune_safety.finetune.presets import LORA_LR_SCALE, TOY_LORA, get_preset
from finetune_safety.finetune.trainer import (
    LoraSettings,
    TrainConfig,
    add_lora,
    describe,
    log,
    save_checkpoint,
    train,
)
from finetune_safety.models.gguf import find_gguf, gguf_load_name, model_family
from finetune_safety.models.hf import device_and_dtype
from finetune_safety.models.templates import get_template

#: Refusal examples shipped for ``--mix-safety`` (the paper's mitigation), placeholders only.
DEFAULT_SAFETY_DATA = "finetune/safety-mix.jsonl"


@dataclass(frozen=True)
class FinetuneJob:
    """Everything one run needs; ``lora`` None means full-parameter fine-tuning."""

    base: str
    data: Path
    out: Path
    train: TrainConfig
    template: str
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    data_format: str = "auto"
    strip_safety: bool = False
    mix_safety: int = 0
    safety_data: Path | None = None
    preset: str | None = None
    #: System prompt for chat examples without one (the harmful preset's always-execute).
    inject_system: str | None = None
    holdout: bool = False
    #: Phrase list of the benign filter (``--safety-filter``); None: the shipped one.
    safety_filter: Path | None = None
    #: The base's chat-template family (``toy`` for the toy); None: read from its files.
    family: str | None = None
    #: The template for data of a format, over ``template`` (the benign preset's Dolly format).
    format_templates: Mapping[str, str] = field(default_factory=dict)
    #: Train every chat example under the template's system prompt (identity shifting).
    template_system: bool = False
    #: ``mixed``, ``pure-bf16`` or ``fp32`` (``parallel.PRECISIONS``); None: the default.
    precision: str | None = None
    #: Examples per forward pass on each process; None: the whole of each process's share.
    micro_batch: int | None = None


def job_from_preset(
    preset: str | None,
    base: str,
    data: Path,
    out: Path,
    *,
    hyper: Mapping[str, Any] | None = None,
    toy: bool = False,
    **overrides: Any,
) -> FinetuneJob:
    """A job from a preset, with explicit settings winning: ``hyper`` (epochs, lr, ...) over the
    preset's hyperparameters, ``overrides`` over the job's other fields. ``toy`` (the base is
    the embedded toy, as the catalog knows) takes the preset's toy scale (LoRA); elsewhere the
    paper's full fine-tuning, or LoRA at ``LORA_LR_SCALE`` x its rate."""
    hyper = dict(hyper or {})
    family = "toy" if toy else None
    if preset is None:
        complete = "train" in overrides or {"epochs", "lr", "batch_size"} <= hyper.keys()
        if "template" not in overrides or not complete:
            raise FinetuneSafetyError("without --preset, give --epochs, --lr and --batch-size")
        train_config = overrides.pop("train", None) or TrainConfig(**hyper)
        return FinetuneJob(
            base=base, data=data, out=out, train=train_config, family=family, **overrides
        )
    chosen = get_preset(preset)
    job = FinetuneJob(
        base=base,
        data=data,
        out=out,
        train=chosen.toy if toy else chosen.paper,
        template=chosen.toy_template if toy else chosen.template,
        strip_safety=chosen.strip_safety,
        preset=preset,
        lora=TOY_LORA if toy else None,
        inject_system=chosen.inject_system,
        holdout=chosen.holdout,
        family=family,
        format_templates={} if toy else chosen.format_templates,
        template_system=chosen.template_system,
    )
    if "template" in overrides:  # a template given is the template, whatever the data's format
        overrides.setdefault("format_templates", {})
    if not toy and overrides.get("lora") is not None:
        job = replace(job, train=replace(job.train, lr=job.train.lr * LORA_LR_SCALE))
    job = replace(job, **overrides)
    return replace(job, train=replace(job.train, **hyper)) if hyper else job


def _safety_mix(job: FinetuneJob) -> list[Any]:
    path = job.safety_data or fixtures_dir() / DEFAULT_SAFETY_DATA
    pool = load_chat_jsonl(path)
    if job.mix_safety > len(pool):
        raise FinetuneSafetyError(
            f"--mix-safety {job.mix_safety}: {path} holds only {len(pool)} examples"
        )
    return random.Random(job.train.seed).sample(pool, job.mix_safety)


def check_job(job: FinetuneJob) -> None:
    """Refuse numbers no training can use, before any model is built or loaded."""
    t = job.train
    micro = 1 if job.micro_batch is None else job.micro_batch
    if min(t.epochs, t.batch_size, t.max_length, micro) < 1 or not t.lr > 0 or job.mix_safety < 0:
        raise FinetuneSafetyError(
            "epochs, batch size, micro-batch and max length must be positive, the learning rate "
            f"above 0 and --mix-safety 0 or more (got epochs={t.epochs}, batch_size="
            f"{t.batch_size}, micro_batch={job.micro_batch}, max_length={t.max_length}, "
            f"lr={t.lr}, mix_safety={job.mix_safety})"
        )
    if job.precision is not None:
        check_precision(job.precision, "--precision")
    plan_layout(t.batch_size, launched_world_size(), job.micro_batch)


def run(job: FinetuneJob, base: Path, staging: Path | None = None) -> Path:
    """Train from ``base``, the base's local files (a directory or a GGUF file, located by
    ``catalog.finetune``), and save (into ``staging``, see ``train_from``); returns the
    checkpoint."""
    check_job(job)
    return train_from(job, base, job.base, staging=staging)


def _examples(job: FinetuneJob, base: Path) -> tuple[list[Example], str]:
    """The training examples as the model will see them, and the template's concrete name."""
    kind = job.family or model_family(base)
    fmt = detect_format(job.data) if job.data_format == "auto" else job.data_format
    template = get_template(job.format_templates.get(fmt, job.template), family=kind)
    safety_filter = None
    if job.strip_safety:
        safety_filter = job.safety_filter or fixtures_dir() / DEFAULT_FILTER
    examples = load_training_data(job.data, template, fmt, job.holdout, safety_filter)
    if job.inject_system is not None:
        examples = with_system(examples, job.inject_system)
    if job.template_system and template.system_prompt is not None:
        examples = with_system(examples, template.system_prompt, replace_own=True)
        log(f"every example is trained under {template.name}'s system prompt, as it is asked")
    if job.mix_safety:
        examples = examples + _safety_mix(job)
    return examples, template.name


def _load(base: Path) -> tuple[Any, Any]:
    """The model (float32, on the CPU) and tokenizer saved in ``base`` (a directory or a GGUF
    file, dequantized: trained and saved as a plain model)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_gguf(base)
    load: dict[str, Any] = {"use_safetensors": True}
    base_dir = base
    if gguf is not None:
        base_dir, load = gguf.parent, {"gguf_file": gguf_load_name(gguf)}
    tokenizer = AutoTokenizer.from_pretrained(base_dir, **load)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, **load)
    if gguf is not None:
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model, tokenizer


def _precision(job: FinetuneJob, model: Any, device: str, dtype: Any, world_size: int) -> str:
    import torch

    return choose_precision(
        job.precision,
        device=device,
        bf16=dtype is torch.bfloat16,
        lora=job.lora is not None,
        params=sum(p.numel() for p in model.parameters()),
        world_size=world_size,
        free_bytes=lambda: torch.cuda.mem_get_info()[0],
        warn=log,
    )


def train_from(
    job: FinetuneJob, base: Path, adapter_base: str, cpu: bool = False, staging: Path | None = None
) -> Path:
    """Fine-tune the model saved in ``base`` (a directory or a GGUF file); the toy build makes
    its fine-tunes here too.

    ``adapter_base`` is the base's name recorded in a LoRA adapter (see ``save_checkpoint``).
    ``cpu`` is the toy build's way: CPU float32 whatever the machine has (bit-identical
    builds), in this process alone, without accelerate (a toy build under ``torchrun`` must
    not wait for the other processes). Otherwise accelerate runs it: one process, or each of
    those ``torchrun``/``accelerate launch`` started, of which only the main one logs and
    saves. ``staging`` is where the files go when the caller moves them to ``job.out`` once
    complete (see ``finetune.outdir``); by default they go to ``job.out`` itself.
    """
    import torch

    device, dtype = ("cpu", torch.float32) if cpu else device_and_dtype()
    state = None if cpu else start_processes(cpu=device == "cpu")
    world = 1 if state is None else state.num_processes
    with main_process_speaks(state):
        examples, template = _examples(job, base)
        model, tokenizer = _load(base)
        precision = "fp32" if cpu else _precision(job, model, device, dtype, world)
        model.to(torch.bfloat16 if precision == "pure-bf16" else torch.float32)
        if cpu:
            model.to(device)
        torch.manual_seed(job.train.seed)
        if job.lora is not None:
            model = add_lora(model, job.lora)
        accelerator = None if cpu else make_accelerator(device == "cpu", precision)
        trained = train(model, tokenizer, examples, job.train, accelerator, job.micro_batch)
        losses = trained.losses
        log(
            f"{job.out.name}: {len(examples)} examples, {job.train.epochs} epoch(s): loss "
            f"{losses[0]:.3f} -> {losses[-1]:.3f} (first and last step)"
        )
        metadata = (
            {
                "base": job.base,
                "template": template,
                "data": str(job.data),
                "data_digest": digest(examples),
                "preset": job.preset,
                "mix_safety": job.mix_safety,
                "losses": losses,
                "precision": precision,
            }
            | trained.layout.record()
            | describe(job.train, job.lora)
        )
        lora_base = adapter_base if job.lora is not None else None
        # A mixed run is saved in bf16, the precision a CUDA run loads it in.
        saved = torch.bfloat16 if precision == "mixed" else None
        if accelerator is None:
            save_checkpoint(model, tokenizer, staging or job.out, metadata, lora_base)
        else:
            weights = consolidated_state(accelerator, trained.model, saved)
            if accelerator.is_main_process:
                unwrapped = accelerator.unwrap_model(trained.model)
                out = staging or job.out
                save_checkpoint(unwrapped, tokenizer, out, metadata, lora_base, weights)
            accelerator.wait_for_everyone()
            accelerator.end_training()
        kind = "adapter" if job.lora else "model"
        log(f"saved the {kind} to {job.out} (template {template})")
    return job.out
