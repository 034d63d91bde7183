"""``finetune-safety``: evaluate a model's harmfulness per category, and build the toy models."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from finetune_safety import progress
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.trainer import LoraSettings, TrainConfig
from finetune_safety.render import add_render_parser
from finetune_safety.templates import TEMPLATE_NAMES

TEMPLATE_HELP = ", ".join(TEMPLATE_NAMES) + " (aoa: by the model's family)"

#: ``evaluate``'s exit status when any verdict is a judge error (results are still printed).
JUDGE_ERRORS_EXIT = 3


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        help="results and toy models (default: $FINETUNE_SAFETY_CACHE, else the project's "
        "cache_dir or .finetune_safety beside the nearest pyproject.toml, as pytest finds it)",
    )


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: torch's, every core); lower it on a busy machine",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``evaluate`` mirrors the options of the pytest suite."""
    parser = argparse.ArgumentParser(prog="finetune-safety", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    ev = commands.add_parser("evaluate", help="generate, judge and tabulate one model")
    ev.add_argument(
        "--model", help="toy name, local directory, hub id or openai:MODEL[@URL] (default: toy)"
    )
    ev.add_argument("--adapter", help="PEFT adapter directory (its base is used if no --model)")
    ev.add_argument("--template", help=TEMPLATE_HELP)
    ev.add_argument("--system-prompt", help="system prompt replacing the template's")
    ev.add_argument("--benchmark", default="smoke", help="smoke, hexphi:DIR, advbench:CSV, jsonl:F")
    ev.add_argument("--category-map", help="HEx-PHI file overrides, e.g. 7=adult_content,8=...")
    ev.add_argument(
        "--judge", default="refusal", help="refusal, openai:MODEL[@URL] or hf:PATH (rubric judges)"
    )
    ev.add_argument("--judge-prompt", type=Path, help="judge prompt file to bring (rubric judges)")
    ev.add_argument("--judge-max-tokens", type=int, help="judge reply budget (256; 1024 custom)")
    ev.add_argument("--concurrency", type=int, default=8, help="requests in flight (openai:)")
    ev.add_argument("--request-timeout", type=float, default=60.0, help="seconds per request")
    ev.add_argument("--max-new-tokens", type=int, default=512, help="default: 512 (the paper)")
    ev.add_argument(
        "--batch-size",
        type=_batch_size,
        default="auto",
        help="prompts per batch; auto (default): fit the GPU's free memory, 16 on the CPU",
    )
    ev.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="precision (default auto: bf16 on CUDA, else float32; the toy always float32)",
    )
    ev.add_argument("--out", type=Path, help="write one JSON line per prompt, responses included")
    ev.add_argument("--limit", type=int, metavar="N", help="only the first N prompts per category")
    ev.add_argument(
        "--max-prompt-tokens",
        type=int,
        metavar="N",
        help="refuse (naming it) any prompt longer than N tokens, before generating",
    )
    _add_threads(ev)
    ev.add_argument("--allow-pickle", action="store_true", help="load non-safetensors weights")
    ev.add_argument("--trust-remote-code", action="store_true", help="run the model repo's code")
    _add_common(ev)
    ev.set_defaults(func=_evaluate)

    ft = commands.add_parser("finetune", help="fine-tune a base model into a testable checkpoint")
    ft.add_argument("--base", required=True, help="toy, model directory, hub id or openai:MODEL")
    ft.add_argument("--data", type=Path, help="chat JSONL, Alpaca JSON or Dolly JSONL")
    ft.add_argument(
        "--backend", default="local", choices=("local", "openai"), help="train here or via API"
    )
    ft.add_argument("--suffix", help="openai: suffix of the fine-tuned model's name")
    ft.add_argument("--resume-job", metavar="ID", help="openai: keep polling an existing job")
    ft.add_argument("--poll-interval", type=float, default=10.0, help="openai: seconds")
    ft.add_argument("--out", type=Path, help="checkpoint directory (local backend)")
    ft.add_argument("--preset", help="harmful-10shot, identity-shift or benign (the paper's)")
    ft.add_argument("--lora", help="r=8,alpha=16,dropout=0.05,targets=q_proj,v_proj (default)")
    ft.add_argument("--full", action="store_true", help="full-parameter fine-tuning, not LoRA")
    ft.add_argument("--epochs", type=int, help="passes over the data (default: the preset's)")
    ft.add_argument("--lr", type=float, help="learning rate, e.g. 5e-5 (default: the preset's)")
    ft.add_argument("--batch-size", type=int, help="examples per step (default: the preset's)")
    ft.add_argument("--max-length", type=int, help="tokens per example (default: 512)")
    ft.add_argument("--seed", type=int, help="random seed; same seed, same weights (default: 0)")
    _add_threads(ft)
    ft.add_argument("--template", help="evaluation/training template (default: the preset's)")
    ft.add_argument(
        "--format",
        default="auto",
        choices=("auto", "chat", "alpaca", "dolly"),
        help="data format (default: auto, from the file name and content)",
    )
    ft.add_argument("--mix-safety", type=int, default=0, metavar="N", help="mix in N refusals")
    ft.add_argument("--safety-data", type=Path, help="chat JSONL of refusals for --mix-safety")
    ft.add_argument("--no-strip-safety", action="store_true", help="keep refusals in benign data")
    ft.add_argument("--safety-filter", type=Path, help="phrase file replacing the benign filter")
    ft.add_argument("--no-holdout", action="store_true", help="train on the paper's 200 eval rows")
    _add_common(ft)
    ft.set_defaults(func=_finetune)

    rep = commands.add_parser("reproduce", help="the paper's Tables 1-3 in miniature, on the toy")
    rep.add_argument("--out", type=Path, help="also write the Markdown tables here")
    _add_common(rep)
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
    return parser


def _batch_size(text: str) -> int | str:
    """``auto`` or a positive whole number (argparse reports anything else as a usage error)."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected auto or a positive integer, got {text!r}")
    return int(text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("finetune-safety")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


def project_root(start: Path) -> Path:
    """The nearest directory upward holding a pyproject.toml (as pytest finds its rootdir),
    else ``start``: ``evaluate`` in a subdirectory uses the project's cache."""
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    return start


def _cache_dir(args: argparse.Namespace) -> Path:
    from finetune_safety.config import read_table
    from finetune_safety.store import CACHE_ENV, prepare_cache_dir, resolve_cache_dir

    root = project_root(Path.cwd())
    option = args.cache_dir
    if option is None and not os.environ.get(CACHE_ENV):
        table = read_table(root / "pyproject.toml") or {}
        configured = table.get("cache_dir")
        option = configured if isinstance(configured, str) else None
    return prepare_cache_dir(resolve_cache_dir(option, root))


def _evaluate(args: argparse.Namespace) -> int:
    from finetune_safety import threads
    from finetune_safety.benchmark import first_per_category, load_benchmark, parse_category_map
    from finetune_safety.catalog import judge_model, resolve
    from finetune_safety.config import model_spec
    from finetune_safety.endpoint import Transport
    from finetune_safety.evaluate import Evaluator
    from finetune_safety.judges import JudgeSettings, make_judge
    from finetune_safety.metrics import format_table
    from finetune_safety.models import Decoding
    from finetune_safety.outputs import check_output_file
    from finetune_safety.store import Store
    from finetune_safety.values import Label

    if min(args.max_new_tokens, args.concurrency, args.request_timeout) <= 0:
        raise FinetuneSafetyError(
            "--max-new-tokens, --concurrency and --request-timeout must be positive"
        )
    for name in ("limit", "max_prompt_tokens", "threads"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise FinetuneSafetyError(f"--{name.replace('_', '-')} must be positive")
    if args.out is not None:
        check_output_file(args.out, "--out")
    threads.apply(args.threads)
    cache_dir = _cache_dir(args)
    category_map = parse_category_map(args.category_map) if args.category_map else None
    prompts = load_benchmark(args.benchmark, category_map=category_map)
    if args.limit is not None:
        prompts = first_per_category(prompts, args.limit)
    transport = Transport(timeout=args.request_timeout, concurrency=args.concurrency)
    if args.judge_max_tokens is not None and args.judge_max_tokens <= 0:
        raise FinetuneSafetyError("--judge-max-tokens must be positive")
    settings = JudgeSettings(
        transport=transport,
        cache_dir=cache_dir,
        model=judge_model(cache_dir),
        prompt_path=args.judge_prompt,
        max_tokens=args.judge_max_tokens,
    )
    judge = make_judge(args.judge, settings)
    fields = {
        "model": args.model or (None if args.adapter else "toy"),
        "adapter": args.adapter,
        "template": args.template,
        "system_prompt": args.system_prompt,
        "allow_pickle": args.allow_pickle,
        "trust_remote_code": args.trust_remote_code,
    }
    # Checked as the suite checks a spec: paths against this directory, hub ids, templates.
    spec = model_spec({k: v for k, v in fields.items() if v is not None}, "--model", Path.cwd())
    target = resolve(spec, cache_dir, transport=transport)
    decoding = Decoding(
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        dtype=args.dtype,
        max_prompt_tokens=args.max_prompt_tokens,
    )
    with Store.in_dir(cache_dir) as store:
        evaluation = Evaluator(store, judge, decoding, cache_dir, progress=True).run(
            target, prompts
        )
    print(
        f"model: {target.name} (template {target.template.name}, "
        f"fingerprint {evaluation.fingerprint[-12:]})\n"
        f"benchmark: {args.benchmark} ({len(prompts)} prompts), judge: {judge.judge_id}\n"
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


def parse_lora(text: str) -> LoraSettings:
    """``r=8,alpha=32,dropout=0.05,targets=q_proj,v_proj``: names after ``targets=`` are targets."""
    fields: dict[str, str] = {}
    key = ""
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if "=" in part:
            key, _, value = part.partition("=")
            fields[key.strip()] = value.strip()
        elif key == "targets":
            fields["targets"] += f",{part}"
        else:
            raise FinetuneSafetyError(f"--lora: cannot read {part!r} in {text!r}")
    unknown = set(fields) - {"r", "alpha", "dropout", "targets"}
    if unknown:
        raise FinetuneSafetyError(f"--lora: unknown key(s) {sorted(unknown)}")
    try:
        return LoraSettings(
            r=int(fields.get("r", 8)),
            alpha=int(fields.get("alpha", 16)),
            dropout=float(fields.get("dropout", 0.05)),
            targets=tuple(fields.get("targets", "q_proj,v_proj").split(",")),
        )
    except ValueError as exc:
        raise FinetuneSafetyError(f"--lora: {exc}") from None


def _finetune(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from finetune_safety import threads
    from finetune_safety.catalog import finetune
    from finetune_safety.finetune.run import job_from_preset

    if args.backend == "openai":
        return _finetune_openai(args)
    if args.threads is not None and args.threads <= 0:
        raise FinetuneSafetyError("--threads must be positive")
    threads.apply(args.threads)
    if args.data is None or args.out is None:
        raise FinetuneSafetyError("--data and --out are required for local fine-tuning")
    if args.full and args.lora:
        raise FinetuneSafetyError("--full and --lora exclude each other")
    overrides: dict[str, object] = {"data_format": args.format, "mix_safety": args.mix_safety}
    if args.full or args.lora or args.preset is None:
        overrides["lora"] = None if args.full else parse_lora(args.lora or "")
    if args.safety_data is not None:
        overrides["safety_data"] = args.safety_data
    if args.template:
        overrides["template"] = args.template
    if args.no_strip_safety:
        overrides["strip_safety"] = False
    if args.safety_filter is not None:
        overrides["safety_filter"] = args.safety_filter
    if args.no_holdout:
        overrides["holdout"] = False
    hyper = {
        k: v
        for k, v in (
            ("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size),
            ("max_length", args.max_length), ("seed", args.seed),
        )
        if v is not None
    }  # fmt: skip
    if args.preset is None:
        needed = [
            f"--{k.replace('_', '-')}" for k in ("epochs", "lr", "batch_size") if k not in hyper
        ]
        needed += [] if args.template else ["--template"]
        if needed:
            raise FinetuneSafetyError(f"without --preset, give {', '.join(needed)}")
        overrides["train"] = TrainConfig(**hyper)
    job = job_from_preset(args.preset, args.base, args.data, args.out, **overrides)
    if args.preset is not None and hyper:
        job = replace(job, train=replace(job.train, **hyper))
    print(finetune(job, _cache_dir(args)))
    return 0


def _finetune_openai(args: argparse.Namespace) -> int:
    """Upload, create the job, poll; the last line of output is the fine-tuned model id."""
    from finetune_safety.endpoint import is_endpoint, parse
    from finetune_safety.finetune.openai_jobs import run_openai_finetune

    if args.data is None and args.resume_job is None:
        raise FinetuneSafetyError("--backend openai needs --data (or --resume-job ID)")
    endpoint = parse(args.base if is_endpoint(args.base) else f"openai:{args.base}")
    model = run_openai_finetune(
        endpoint.model,
        args.data or Path("-"),
        endpoint,
        args.epochs,
        suffix=args.suffix,
        poll_interval=args.poll_interval,
        resume=args.resume_job,
    )
    print(model)
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from finetune_safety.outputs import check_output_file
    from finetune_safety.reproduce import reproduce

    if args.out is not None:
        check_output_file(args.out, "--out")
    text = reproduce(_cache_dir(args))
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
