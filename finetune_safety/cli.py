"""``finetune-safety``: evaluate a model's harmfulness per category, and build the embedded
models (the toy, smol)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from finetune_safety import progress
from finetune_safety.cli_finetune import add_finetune_parser
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.models import ModelSpec
from finetune_safety.render import add_render_parser
from finetune_safety.settings import SETTING, add_flags, add_spec_flags, evaluate_flags

#: ``evaluate``'s exit status when any verdict is a judge error (results are still printed).
JUDGE_ERRORS_EXIT = 3


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, ["cache_dir"])


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``evaluate`` mirrors the options of the pytest suite."""
    parser = argparse.ArgumentParser(prog="finetune-safety", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

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
    ev.set_defaults(func=_evaluate)

    add_finetune_parser(commands)

    rep = commands.add_parser(
        "reproduce", help="the paper's Tables 1-3 in miniature, on the toy or on smol"
    )
    rep.add_argument("--out", type=Path, help="also write the Markdown tables here")
    rep.add_argument(
        "--base",
        choices=("toy", "smol"),
        default="toy",
        help="the aligned model to fine-tune (default toy; smol: SmolLM2-135M aligned here)",
    )
    add_flags(rep, ["cache_dir", "threads", "limit"])
    rep.set_defaults(func=_reproduce)

    diff = commands.add_parser(
        "diff", help="prompts that flipped between two runs (report JSON or snapshot directory)"
    )
    diff.add_argument("a", type=Path, help="the earlier run: report JSON or snapshot directory")
    diff.add_argument("b", type=Path, help="the later run")
    diff.set_defaults(func=_diff)

    add_render_parser(commands)

    toy = commands.add_parser("toy", help="the embedded toy models")
    toy_commands = toy.add_subparsers(dest="toy_command", required=True)
    build = toy_commands.add_parser("build", help="build the toy models now (else on first use)")
    _add_common(build)
    build.set_defaults(func=_toy_build)

    smol = commands.add_parser("smol", help="smol: SmolLM2-135M-Instruct, safety-aligned here")
    smol_commands = smol.add_subparsers(dest="smol_command", required=True)
    smol_build = smol_commands.add_parser(
        "build", help="convert and align smol now (else on first use of --safety-base smol)"
    )
    _add_common(smol_build)
    smol_build.set_defaults(func=_smol_build)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("finetune-safety")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


def _cache_dir(args: argparse.Namespace) -> Path:
    from finetune_safety.project import cache_dir

    return cache_dir(args.cache_dir)


def _model_spec(args: argparse.Namespace, base: ModelSpec) -> ModelSpec:
    """The model flags; without ``--model`` or ``--adapter`` they adjust the configured base."""
    from dataclasses import asdict

    from finetune_safety.config import model_spec
    from finetune_safety.validate import SPEC_FIELDS

    fields = {k: getattr(args, f"spec_{k}") for k in SPEC_FIELDS}
    given = {k: v for k, v in fields.items() if v is not None and v is not False}
    if "model" not in given and "adapter" not in given:
        given = {k: v for k, v in asdict(base).items() if v is not None and v is not False} | given
    # Checked as the suite checks a spec: paths against this directory, hub ids, templates.
    return model_spec(given, "--model", Path.cwd())


def _evaluate(args: argparse.Namespace) -> int:
    from finetune_safety import threads
    from finetune_safety.benchmark import first_per_category, load_benchmark
    from finetune_safety.catalog import judge_model, resolve
    from finetune_safety.config import Overrides
    from finetune_safety.evaluate import Evaluator
    from finetune_safety.judges import JudgeSettings, make_judge
    from finetune_safety.metrics import format_table
    from finetune_safety.models import Decoding
    from finetune_safety.outputs import check_output_file
    from finetune_safety.project import project_config
    from finetune_safety.store import Store
    from finetune_safety.values import Label

    flags = {s.name: getattr(args, s.name) for s in evaluate_flags() if s.config}
    reads = {*flags, "base", "cache_dir"}
    config = project_config(Overrides(flags=True, **flags), only=reads)
    spec = _model_spec(args, config.base)
    if args.out is not None:
        check_output_file(args.out, "--out")
    threads.apply(config.threads)
    cache_dir = _cache_dir(args)
    prompts = load_benchmark(config.benchmark, category_map=config.category_map)
    if config.limit is not None:
        prompts = first_per_category(prompts, config.limit)
    settings = JudgeSettings(
        transport=config.transport,
        cache_dir=cache_dir,
        model=judge_model(cache_dir),
        prompt_path=config.judge_prompt,
        max_tokens=config.judge_max_tokens,
    )
    judge = make_judge(config.judge, settings)
    target = resolve(spec, cache_dir, transport=config.transport)
    decoding = Decoding(
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        dtype=config.dtype,
        max_prompt_tokens=config.max_prompt_tokens,
    )
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
    print(format_table(evaluation.results()))
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
                }
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


def _reproduce(args: argparse.Namespace) -> int:
    from finetune_safety import threads
    from finetune_safety.outputs import check_output_file
    from finetune_safety.reproduce import reproduce

    if args.out is not None:
        check_output_file(args.out, "--out")
    for name in ("limit", "threads"):
        if getattr(args, name) is not None:
            SETTING[name].from_command_line(getattr(args, name), f"--{name}", Path.cwd())
    threads.apply(args.threads)
    text = reproduce(_cache_dir(args), base=args.base, limit=args.limit)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from finetune_safety.diff import run

    text, code = run(args.a, args.b)
    print(text)
    return code


def _toy_build(args: argparse.Namespace) -> int:
    from finetune_safety.toy import ensure_toy

    print(ensure_toy(_cache_dir(args)))
    return 0


def _smol_build(args: argparse.Namespace) -> int:
    from finetune_safety.smol import ensure_smol

    print(ensure_smol(_cache_dir(args)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; package errors become one-line messages and exit code 2."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    try:
        with progress.sink(progress.to_stderr):
            code: int = args.func(args)
    except FinetuneSafetyError as exc:
        print(f"finetune-safety: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
