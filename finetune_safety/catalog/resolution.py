"""The catalog: from a spec to model files to a target (toy, smol, HF directory, hub id, GGUF,
served).

It sits above the toy, which it builds on first use, and below the pipeline, so that models and
training never import the toy: training takes the directories located here, and an ``hf:``
judge gets its model from here through ``JudgeSettings.model``.

Resolving a spec costs no model load: a target's ``fingerprint`` comes from its files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from finetune_safety._util.buildonce import built_once
from finetune_safety._util.registry import scheme_of
from finetune_safety.config.loading import SafetyConfig
from finetune_safety.config.names import SMOL_NAMES, TOY_BASE
from finetune_safety.errors import FinetuneSafetyError, JudgeError, ModelLoadError
from finetune_safety.judges.combined import CombinedJudge
from finetune_safety.judges.registry import Judge, JudgeFactory, make_judge
from finetune_safety.models import (
    TARGETS,
    ModelSpec,
    Target,
    TargetSettings,
    adapter_base,
    template_for,
)
from finetune_safety.models.endpoint import Transport
from finetune_safety.models.local import check_model_dir, model_and_adapter
from finetune_safety.models.templates import Template

if TYPE_CHECKING:  # training and the toy are imported where used: resolving stays light
    from finetune_safety.finetune.recipes import Recipe
    from finetune_safety.finetune.run import FinetuneJob


def _display_name(spec: ModelSpec, model: str) -> str:
    """What the user named: the model, the adapter, or ``model+adapter`` for both."""
    if spec.adapter is None:
        return spec.model or model
    return spec.adapter if spec.model is None else f"{spec.model}+{Path(spec.adapter).name}"


def resolve(
    spec: ModelSpec,
    cache_dir: Path,
    name: str | None = None,
    template: Template | None = None,
    transport: Transport | None = None,
) -> Target:
    """A target for ``spec``; toy names build the toy models into ``cache_dir`` on first use.

    A model spec with a registered scheme (``openai:MODEL``, or one a user registered) is built
    by that scheme's factory; anything else is a toy name, a directory or a hub id.

    ``template`` overrides the spec's, e.g. to ask a base model exactly what its fine-tune is asked.
    ``transport`` sets timeouts, retries and concurrency for ``openai:`` models.
    """
    from finetune_safety.catalog.toy import BASE, toy_checkpoint
    from finetune_safety.models.hf import HFTarget

    factory = TARGETS.get(scheme_of(spec.model)) if spec.model and ":" in spec.model else None
    if factory is not None:
        return factory(spec, TargetSettings(cache_dir, name, template, transport))

    adapter_dir = Path(spec.adapter) if spec.adapter else None
    if adapter_dir is not None and not (adapter_dir / "adapter_config.json").is_file():
        raise ModelLoadError("not a PEFT adapter directory (no adapter_config.json)", adapter_dir)
    model = spec.model or (adapter_base(adapter_dir) if adapter_dir is not None else BASE)
    toy = toy_checkpoint(model, cache_dir)
    model_dir: Path | None = None
    if toy is not None:
        if adapter_dir is not None and toy.adapter is not None:
            raise ModelLoadError(f"an adapter cannot be added to the toy fine-tune {model!r}")
        model_dir, adapter_dir = toy.base, adapter_dir or toy.adapter
    elif model in SMOL_NAMES:
        model_dir = _smol_dir(model, cache_dir)
    elif Path(model).exists():
        model_dir = check_model_dir(Path(model), spec.full_model)
    family: Path | str = "toy" if toy is not None else model_dir or model
    return HFTarget(
        name=name or _display_name(spec, model),
        model=str(model_dir) if model_dir is not None else model,
        adapter=adapter_dir,
        template=template or template_for(spec, adapter_dir, model_dir, model=family),
        allow_pickle=spec.allow_pickle,
        trust_remote_code=spec.trust_remote_code,
        float32_auto=toy is not None or model in SMOL_NAMES,
        without_adapter=model_dir is not None and model_and_adapter(model_dir) is not None,
    )


def _smol_dir(name: str, cache_dir: Path) -> Path:
    """smol's directory, or one of its fine-tunes' (a recipe off smol), built on first use."""
    from finetune_safety.catalog import smol

    if name == smol.BASE:
        return smol.ensure_smol(cache_dir)
    return Path(str(build_recipe(smol.recipe(name), cache_dir).model))


def _local_files(base: str, target: Target) -> Path:
    """The local files training starts from: a path as given, else the toy's directory or a hub
    id's snapshot; a served model is refused (it is fine-tuned by its provider)."""
    from finetune_safety.models.hf import HFTarget

    if not isinstance(target, HFTarget):
        raise FinetuneSafetyError(
            f"{base}: a served model is fine-tuned with --backend openai, not locally"
        )
    return Path(base) if Path(base).exists() else target.local_dir()


def locate_base(base: str, cache_dir: Path) -> Path:
    """The local files of the model ``base`` names, for training (see ``_local_files``)."""
    return _local_files(base, resolve(ModelSpec(base), cache_dir, name=base))


def finetune(job: FinetuneJob, cache_dir: Path, overwrite: bool = False) -> Path:
    """Locate the base (toy, directory or hub id), train and save; returns the checkpoint.

    ``job.out`` is written whole or not at all (``finetune.outdir``): a non-empty one is
    refused unless ``overwrite``, which replaces it whole; a second run into it stops. Of
    several processes (``torchrun``), the main one holds ``job.out`` and writes it; the others
    train beside it and write nothing.
    """
    from finetune_safety.finetune.outdir import written_whole
    from finetune_safety.finetune.parallel import launched_rank
    from finetune_safety.finetune.run import check_job, run

    if Path(job.base).exists():  # a relative path would not resolve from anywhere else
        job = replace(job, base=str(Path(job.base).resolve()))
    check_job(job)  # before the base is located: a bad number must not wait for a toy build
    if launched_rank() != 0:
        run(job, locate_base(job.base, cache_dir))
        return job.out
    inputs = [Path(p) for p in (job.base, job.data) if Path(p).exists()]
    with written_whole(job.out, overwrite, inputs) as staging:
        run(job, locate_base(job.base, cache_dir), staging)
    return job.out


def is_toy_base(model: str) -> bool:
    """Whether training starts from the toy base (the presets' toy scale applies)."""
    return model == TOY_BASE


def recipe_key(recipe: Recipe, cache_dir: Path) -> str:
    """The recipe's key, over its base's fingerprint (see ``Recipe.key``)."""
    base = resolve(ModelSpec(recipe.base), cache_dir, name=recipe.base)
    return recipe.key(base.fingerprint, toy=is_toy_base(recipe.base))


def build_recipe(recipe: Recipe, cache_dir: Path) -> ModelSpec:
    """The recipe's checkpoint as a spec the suite can resolve, fine-tuned on first use; the
    base is resolved once, for its fingerprint (the key) and its files (the training)."""
    from finetune_safety.finetune.run import check_job, run

    base = resolve(ModelSpec(recipe.base), cache_dir, name=recipe.base)
    toy = is_toy_base(recipe.base)
    root = cache_dir / "checkpoints" / recipe.key(base.fingerprint, toy=toy)

    def train(partial: Path) -> Path:
        job = recipe.job(partial, toy=toy)
        check_job(job)
        return run(job, _local_files(recipe.base, base))

    built_once(root, "fine-tuning the recipe", train)
    if recipe.job(root, toy=toy).lora is None:  # full fine-tuning: the default off the toy
        return ModelSpec(model=str(root))
    return ModelSpec(adapter=str(root))


def judge_model(cache_dir: Path) -> Callable[[str], Target]:
    """Builds an ``hf:PATH`` judge's model from PATH, a toy name, directory or hub id."""

    def load(path: str) -> Target:
        return resolve(ModelSpec(path), cache_dir, name=path)

    return load


def configured_judge(
    config: SafetyConfig, cache_dir: Path, factory: JudgeFactory = make_judge
) -> Judge:
    """The run's judge as the configuration names it, built by ``factory`` (the registries, or
    the pytest hooks) with the run's settings; several judges are combined as
    ``judge_combine`` says. The suite and every command build it so."""
    settings = config.judge_settings(cache_dir, judge_model(cache_dir))
    judges = []
    for spec in config.judges:
        judge = factory(spec, settings)
        if not isinstance(judge, Judge):
            raise JudgeError(f"judge {spec!r}: the factory returned {judge!r:.60}")
        judges.append(judge)
    return judges[0] if len(judges) == 1 else CombinedJudge(tuple(judges), config.judge_combine)
