"""``finetune-safety depth``: the prefill-depth curve of a model and its base (Qi et al., ICLR
2025): the harmfulness rate when each answer begins with the first k tokens of a harmful one."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finetune_safety.config import add_flags
from finetune_safety.config.checks import depth_list, depths
from finetune_safety.config.schema import add_spec_flags
from finetune_safety.evaluation.depth import DEFAULT_DEPTHS

if TYPE_CHECKING:
    from finetune_safety.models import Target

#: The settings only ``depth`` reads from its flags: where the prefixes come from, what the
#: judge reads of a prefilled answer.
PREFILL_FLAGS = ("prefix_file", "prefix_model", "prefill_judge")


def add_parser(commands: Any) -> None:
    dp = commands.add_parser(
        "depth",
        help="the prefill-depth curve of a model and its base",
        description="Prefill each answer with the first k tokens (the model's own tokenizer; "
        "whitespace words for served models) of a harmful answer, from --prefix-file or "
        "--prefix-model's greedy answers, and print the harmfulness rate per k for the model "
        "and its base (the table's base, or --base), the base asked with the model's template. "
        "Other settings as for evaluate.",
    )
    add_spec_flags(dp)
    dp.add_argument("--base", dest="base_spec", metavar="SPEC", help="the base model spec")
    dp.add_argument(
        "--depths",
        type=depth_list,
        default=list(DEFAULT_DEPTHS),
        metavar="K,...",
        help=f"prefill depths (default: {','.join(map(str, DEFAULT_DEPTHS))})",
    )
    add_flags(dp, PREFILL_FLAGS)
    add_flags(dp)
    dp.set_defaults(func=run)


def _given(target: Target) -> Callable[[], Target]:
    """``target`` as the preflight asks for it."""
    return lambda: target


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tabulate import tabulate

    from finetune_safety.catalog import resolve
    from finetune_safety.cli.evaluate import flag_spec, prepare
    from finetune_safety.config import Overrides, model_spec
    from finetune_safety.config.checks import ConfigError
    from finetune_safety.config.project import project_config
    from finetune_safety.config.schema import evaluate_flags
    from finetune_safety.errors import FinetuneSafetyError
    from finetune_safety.evaluation.depth import (
        answers_for,
        depth_case,
        load_prefixes,
        prefilled_records,
    )
    from finetune_safety.evaluation.pipeline import Evaluator
    from finetune_safety.evaluation.preflight import judge_subject, require
    from finetune_safety.evaluation.store import Store
    from finetune_safety.models import Prefillable, is_endpoint, prefill_refusal
    from finetune_safety.report.aggregate import Row
    from finetune_safety.report.render import CURVE_HEADERS, cells
    from finetune_safety.values import Label

    ks = depths(args.depths, "--depths")
    names = [s.name for s in evaluate_flags() if s.config] + list(PREFILL_FLAGS)
    flags = {name: getattr(args, name) for name in names}
    overrides = Overrides(flags=True, **flags)
    config = project_config(overrides, only={*flags, "base", "cache_dir"} - set(PREFILL_FLAGS))
    sources = [s for s in ("prefix_file", "prefix_model") if getattr(config, s) is not None]
    if len(sources) != 1:
        raise ConfigError("depth: give exactly one of --prefix-file and --prefix-model")
    spec = flag_spec(args, config.base)
    base_spec = model_spec(args.base_spec, "--base", Path.cwd()) if args.base_spec else config.base
    cache_dir, prompts, judge = prepare(args, config)
    target = resolve(spec, cache_dir, transport=config.transport)
    base = resolve(base_spec, cache_dir, template=target.template, transport=config.transport)
    refusal = any(ks) and (prefill_refusal(target) or prefill_refusal(base))
    if refusal:
        raise FinetuneSafetyError(f"depth: cannot be prefilled: {refusal}")
    pairs = (("model", target, spec), ("base", base, base_spec))
    served = {what: _given(m) for what, m, s in pairs if is_endpoint(s.model)}
    require(served, judge, judge_subject(config.judge, overrides.origin("judge")))
    with Store.in_dir(cache_dir) as store:
        evaluator = Evaluator(store, judge, config.decoding(), cache_dir, progress=True)
        if config.prefix_file is not None:
            source = f"the answers of {config.prefix_file}"
            answers = load_prefixes(config.prefix_file)
        else:
            assert config.prefix_model is not None
            prefixer = resolve(config.prefix_model, cache_dir, transport=config.transport)
            own = evaluator.run(prefixer, prompts).records
            unsafe = sum(r.verdict.label == Label.UNSAFE for r in own)
            source = (
                f"the greedy answers of {prefixer.name} ({unsafe}/{len(own)} of them judged unsafe)"
            )
            answers = {r.prompt.id: r.response for r in own}
        texts = answers_for(prompts, answers, str(config.prefix_file or "--prefix-model"))
        rows = []
        for k in ks:
            sides = [
                prefilled_records(evaluator, m, prompts, texts, k, config.prefill_judge)
                for m in (base, target)
            ]
            case = depth_case(target.name, k, *sides)
            rows.append(cells(Row(f"k={k}", case.base, case.result, case.p_value, "-"))[:-1])
    unit = target.prefix_unit if isinstance(target, Prefillable) else "tokens"
    reads = "the whole answer (prefix and continuation)"
    print(
        f"model: {target.name} (template {target.template.name}), base: {base.name}\n"
        f"benchmark: {config.benchmark} ({len(prompts)} prompts), judge: {judge.judge_id}\n"
        f"prefixes: the first k {unit} of {source}\n"
        f"the judge reads {reads if config.prefill_judge == 'whole' else 'the continuation'}\n"
    )
    print(tabulate(rows, headers=CURVE_HEADERS[:-1], tablefmt="simple", disable_numparse=True))
    return 0
