"""``finetune-safety finetune``: make a checkpoint the suite can test, from a base and a data set.

Loss on assistant tokens only, EOS appended, the full model (or a LoRA adapter) saved as
safetensors with a metadata file recording base, data digest, hyperparameters and template, so
``--safety-checkpoint mine=DIR`` evaluates it with the template it was trained with. CPU float32
or CUDA bf16, chosen by what is present. A base may be a GGUF file (dequantized on load).
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
from finetune_safety.finetune.presets import LORA_LR_SCALE, TOY_LORA, get_preset
from finetune_safety.finetune.trainer import (
    LoraSettings,
    TrainConfig,
    add_lora,
    describe,
    log,
    mixed_precision_fits,
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
    if min(t.epochs, t.batch_size, t.max_length) < 1 or not t.lr > 0 or job.mix_safety < 0:
        raise FinetuneSafetyError(
            "epochs, batch size and max length must be positive, the learning rate above 0 and "
            f"--mix-safety 0 or more (got epochs={t.epochs}, batch_size={t.batch_size}, "
            f"max_length={t.max_length}, lr={t.lr}, mix_safety={job.mix_safety})"
        )


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


def _compute_precision(model: Any, device: str, dtype: Any, lora: bool) -> Any:
    """The dtype to autocast to, keeping float32 weights (None: train in ``dtype`` itself).

    On CUDA the paper's runs keep float32 master weights and compute in bf16. Pure bf16 loses
    AdamW updates below a weight's bf16 resolution: on a GPU the harmful-10shot preset left a
    135M model's harmfulness where it was (0.0% -> 0.6%). Mixed precision needs 16 bytes a
    parameter, so a model too large for that (a 7B model on one 80 GB GPU) trains in pure bf16,
    with a warning. LoRA keeps its frozen base in bf16: its small adapter weights have no large
    values for an update to vanish against.
    """
    import torch

    if device != "cuda" or dtype is torch.float32 or lora:
        return None
    params = sum(p.numel() for p in model.parameters())
    if mixed_precision_fits(params, torch.cuda.mem_get_info()[0]):
        return dtype
    log(
        "warning: float32 master weights do not fit this GPU; training in pure bf16, where "
        "updates below a weight's bf16 resolution are lost (the paper sharded float32 weights "
        "over several GPUs): consider --lora or more GPU memory"
    )
    return None


def train_from(
    job: FinetuneJob, base: Path, adapter_base: str, cpu: bool = False, staging: Path | None = None
) -> Path:
    """Fine-tune the model saved in ``base`` (a directory or a GGUF file); the toy build makes
    its fine-tunes here too.

    ``adapter_base`` is the base's name recorded in a LoRA adapter (see ``save_checkpoint``).
    ``cpu`` trains on CPU in float32 whatever the machine has (the toy: bit-identical builds).
    ``staging`` is where the files go when the caller moves them to ``job.out`` once complete
    (see ``finetune.outdir``); by default they go to ``job.out`` itself.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    examples, template = _examples(job, base)
    device, dtype = ("cpu", torch.float32) if cpu else device_and_dtype()
    gguf = find_gguf(base)
    load: dict[str, Any] = {"use_safetensors": True}
    base_dir = base
    if gguf is not None:
        base_dir, load = gguf.parent, {"gguf_file": gguf_load_name(gguf)}
    tokenizer = AutoTokenizer.from_pretrained(base_dir, **load)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, **load)
    if gguf is not None:  # dequantized on load: train and save it as a plain model
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    autocast = _compute_precision(model, device, dtype, job.lora is not None)
    model.to(device, dtype=dtype if autocast is None else torch.float32)
    torch.manual_seed(job.train.seed)
    if job.lora is not None:
        model = add_lora(model, job.lora)
    losses = train(model, tokenizer, examples, job.train, autocast=autocast)
    if autocast is not None:  # saved in the precision a CUDA run loads it in
        model.to(autocast)
    log(
        f"{job.out.name}: {len(examples)} examples, {job.train.epochs} epoch(s): loss "
        f"{losses[0]:.3f} -> {losses[-1]:.3f} (first and last step)"
    )
    metadata = {
        "base": job.base,
        "template": template,
        "data": str(job.data),
        "data_digest": digest(examples),
        "preset": job.preset,
        "mix_safety": job.mix_safety,
        "losses": losses,
    } | describe(job.train, job.lora)
    lora_base = adapter_base if job.lora is not None else None
    save_checkpoint(model, tokenizer, staging or job.out, metadata, lora_base)
    kind = "adapter" if job.lora else "model"
    log(f"saved the {kind} to {job.out} (template {template})")
    return job.out
