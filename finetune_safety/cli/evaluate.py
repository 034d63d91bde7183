"""``finetune-safety evaluate``: generate, judge and tabulate one model, as the gate would."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune_safety.config import add_flags
from finetune_safety.config.schema import add_spec_flags, evaluate_flags
from finetune_safety.models import ModelSpec

if TYPE_CHECKING:
    from finetune_safety.config import SafetyConfig
    from finetune_safety.judges import Judge
    from finetune_safety.values import Prompt

#: ``evaluate``'s exit status when any verdict is a judge error (results are still printed).
JUDGE_ERRORS_EXIT = 3


def add_parser(commands: Any) -> None:
    ev = commands.add_parser(
        "evaluate",
        help="generate, judge and tabulate one model",
        description="Settings come from the project's [tool.finetune_safety] (the nearest "
        "pyproject.toml upward); flags override them. Without --model or --adapter the "
        "model is the table's base, else the toy.",
    )
    add_spec_flags(ev)
    add_flags(ev)
    ev.add_argument("--out", type=Path, help="write one JSON line per prompt, responses included")
    ev.add_argument(
        "--device",
        metavar="cpu|cuda|cuda:N",
        help="where local models run; cuda:N is the Nth GPU this process sees (default: CUDA "
        "when present, else the CPU; $FINETUNE_SAFETY_DEVICE)",
    )
    ev.set_defaults(func=run)


def flag_spec(args: argparse.Namespace, base: ModelSpec) -> ModelSpec:
    """The model flags; without ``--model`` or ``--adapter`` they adjust the configured base."""
    from dataclasses import asdict

    from finetune_safety.config import model_spec
    from finetune_safety.config.specs import SPEC_FIELDS

    fields = {k: getattr(args, f"spec_{k}") for k in SPEC_FIELDS}
    given = {k: v for k, v in fields.items() if v is not None and v is not False}
    if "model" not in given and "adapter" not in given:
        configured = {k: v for k, v in asdict(base).items() if k in SPEC_FIELDS}
        given = {k: v for k, v in configured.items() if v is not None and v is not False} | given
    # Checked as the suite checks a spec: paths against this directory, hub ids, templates.
    return model_spec(given, "--model", Path.cwd())


def prepare(args: argparse.Namespace, config: SafetyConfig) -> tuple[Path, list[Prompt], Judge]:
    """The cache directory, the prompts (``--limit`` applied) and the judge of a command that
    evaluates models (``evaluate``, ``depth``); torch's threads set."""
    from finetune_safety._util import threads
    from finetune_safety.benchmarks import first_per_category, load_benchmark
    from finetune_safety.catalog import configured_judge
    from finetune_safety.config.project import cache_dir as project_cache_dir

    threads.apply(config.threads)
    cache_dir = project_cache_dir(args.cache_dir)
    prompts = load_benchmark(config.benchmark, category_map=config.category_map)
    if config.limit is not None:
        prompts = first_per_category(prompts, config.limit)
    return cache_dir, list(prompts), configured_judge(config, cache_dir)


def run(args: argparse.Namespace) -> int:
    from finetune_safety._util.outputs import check_output_file
    from finetune_safety.catalog import resolve
    from finetune_safety.config import Overrides
    from finetune_safety.config.project import project_config
    from finetune_safety.evaluation.agreement import between_judges
    from finetune_safety.evaluation.metrics import format_table
    from finetune_safety.evaluation.pipeline import Evaluator
    from finetune_safety.evaluation.preflight import judge_subject, require
    from finetune_safety.evaluation.store import Store
    from finetune_safety.judges import coverage_notes
    from finetune_safety.models import is_endpoint, redact
    from finetune_safety.models.precision import use_device
    from finetune_safety.report.render import agreement_lines
    from finetune_safety.values import Label

    if args.device is not None:
        use_device(args.device, "--device")
    flags = {s.name: getattr(args, s.name) for s in evaluate_flags() if s.config}
    reads = {*flags, "base", "cache_dir"}
    overrides = Overrides(flags=True, **flags)
    config = project_config(overrides, only=reads)
    spec = flag_spec(args, config.base)
    if args.out is not None:
        check_output_file(args.out, "--out")
    cache_dir, prompts, judge = prepare(args, config)
    target = resolve(spec, cache_dir, transport=config.transport)
    served = {"model": lambda: target} if is_endpoint(spec.model) else {}  # the URL is in the line
    require(served, judge, judge_subject(config.judges, overrides.origin("judge")))
    decoding = config.decoding()
    with Store.in_dir(cache_dir) as store:
        evaluation = Evaluator(store, judge, decoding, cache_dir, progress=True).run(
            target, prompts
        )
    print(
        f"model: {target.name} (template {target.template.name}, "
        f"fingerprint {evaluation.fingerprint[-12:]})\n"
        f"benchmark: {config.benchmark} ({len(prompts)} prompts), judge: {judge.judge_id}\n"
        f"generated {evaluation.generated}, judged {evaluation.judged}, "
        f"cached {len(prompts) - evaluation.generated}\n"
    )
    for note in coverage_notes(config.judges, dict.fromkeys(p.category for p in prompts)):
        print(f"finetune-safety: {note}\n")
    print(format_table(evaluation.results()))
    if len(config.judges) > 1:
        answers = {r.prompt.id: [v.label for v in r.verdict.parts] for r in evaluation.records}
        named = [redact(spec) for spec in config.judges]
        lines = agreement_lines(between_judges(answers), named, config.judge_combine)
        print("\n" + "\n".join(lines))
    if args.out is not None:
        with args.out.open("w", encoding="utf-8") as out:
            for r in evaluation.records:
                row = {
                    "id": r.prompt.id,
                    "category": r.prompt.category,
                    "prompt": r.prompt.text,
                    "response": r.response,
                    "score": r.verdict.score,
                    "label": str(r.verdict.label),
                    "reason": r.verdict.rationale,
                    **r.verdict.details(),
                }
                if r.verdict.parts:
                    row["judges"] = [
                        {"judge": v.judge_id, "score": v.score, "label": str(v.label)}
                        for v in r.verdict.parts
                    ]
                if r.verdict.label == Label.ERROR:
                    row["judge_raw"] = r.verdict.raw
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"\nwrote {len(evaluation.records)} records to {args.out}")
    errors = [r.prompt.id for r in evaluation.records if r.verdict.label == Label.ERROR]
    if errors:
        print(
            f"finetune-safety: {len(errors)} verdict(s) are judge errors "
            f"({', '.join(errors[:5])}{', ...' if len(errors) > 5 else ''}); they are not "
            f"cached and are judged again on the next run",
            file=sys.stderr,
        )
        return JUDGE_ERRORS_EXIT
    return 0
