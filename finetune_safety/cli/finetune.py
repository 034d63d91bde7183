"""``finetune-safety finetune``: a local backend and an OpenAI one, each with its own flags.

The backend is ``--backend``, else ``openai`` for an ``openai:`` base and ``local`` otherwise.
The flags common to both are ``COMMON_FLAGS``; a flag of the other backend is a one-line error
naming it, so a mistyped run never silently drops a setting.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finetune_safety.config.schema import SETTING, add_flags
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.trainer import LoraSettings
from finetune_safety.models.templates import TEMPLATE_NAMES

BACKENDS = ("local", "openai")
POLL_INTERVAL = 10.0
#: The flags both backends take.
COMMON_FLAGS = ("--base", "--data", "--epochs", "--preset", "--format")
#: Each backend's own flags (besides ``COMMON_FLAGS``), with argparse keywords.
LOCAL_FLAGS: dict[str, dict[str, Any]] = {
    "--out": {"type": Path, "help": "checkpoint directory (new or empty, else --overwrite)"},
    "--overwrite": {
        "action": "store_true",
        "help": "replace a checkpoint already at --out, whole",
    },
    "--lora": {"help": "r=8,alpha=16,dropout=0.05,targets=q_proj,v_proj (default)"},
    "--full": {"action": "store_true", "help": "full-parameter fine-tuning, not LoRA"},
    "--lr": {"type": float, "help": "learning rate, e.g. 5e-5 (default: the preset's)"},
    "--batch-size": {"type": int, "help": "examples per step (default: the preset's)"},
    "--max-length": {"type": int, "help": "tokens per example (default: 512)"},
    "--seed": {"type": int, "help": "random seed; same seed, same weights (default: 0)"},
    "--template": {
        "help": f"evaluation/training template (default: the preset's): {', '.join(TEMPLATE_NAMES)}"
    },
    "--mix-safety": {"type": int, "metavar": "N", "help": "mix in N refusals (default: 0)"},
    "--safety-data": {"type": Path, "help": "chat JSONL of refusals for --mix-safety"},
    "--no-strip-safety": {"action": "store_true", "help": "keep refusals in benign data"},
    "--safety-filter": {"type": Path, "help": "phrase file replacing the benign filter"},
    "--no-holdout": {"action": "store_true", "help": "train on the paper's 200 eval rows"},
}
#: Local settings from the schema: the same flags (and checks) as ``evaluate``'s.
LOCAL_SETTINGS = ("threads", "cache_dir")
OPENAI_FLAGS: dict[str, dict[str, Any]] = {
    "--suffix": {"help": "suffix of the fine-tuned model's name"},
    "--resume-job": {"metavar": "ID", "help": "keep polling an existing job"},
    "--poll-interval": {"type": float, "help": f"seconds (default: {POLL_INTERVAL})"},
}


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _given(value: object) -> bool:
    """Typed on the command line: the defaults are None, and False for switches (0 is given)."""
    return value is not None and value is not False


def backend_flags() -> dict[str, tuple[str, ...]]:
    """Each backend's own flags, as typed."""
    local = (*LOCAL_FLAGS, *(SETTING[name].flag_name for name in LOCAL_SETTINGS))
    return {"local": local, "openai": tuple(OPENAI_FLAGS)}


def add_parser(commands: Any) -> None:
    """The ``finetune`` subcommand (wired into the CLI's subparsers)."""
    ft = commands.add_parser(
        "finetune",
        help="fine-tune a base model into a testable checkpoint",
        description="Two backends, each with its own flags: local (the default) and openai "
        f"(--backend openai, or an openai: base). {', '.join(COMMON_FLAGS)} serve both.",
    )
    ft.add_argument("--base", required=True, help="toy, model directory, hub id or openai:MODEL")
    ft.add_argument("--data", type=Path, help="chat JSONL, Alpaca JSON or Dolly JSONL")
    ft.add_argument(
        "--backend",
        choices=BACKENDS,
        help="train here or via API (default: openai for an openai: base, else local)",
    )
    ft.add_argument("--epochs", type=int, help="passes over the data (default: the preset's)")
    ft.add_argument(
        "--preset",
        help="harmful-10shot, identity-shift or benign: the paper's settings (on OpenAI: epochs)",
    )
    ft.add_argument(
        "--format",
        choices=("auto", "chat", "alpaca", "dolly"),
        help="data format (default: auto, from the file's content); OpenAI gets Alpaca and "
        "Dolly in the reference's GPT-3.5 formats",
    )
    local = ft.add_argument_group("local backend", "train here (the default)")
    for flag, kwargs in LOCAL_FLAGS.items():
        local.add_argument(flag, **({"default": None} | kwargs))
    add_flags(local, LOCAL_SETTINGS)
    openai = ft.add_argument_group(
        "openai backend", "fine-tune through the API (--backend openai, or an openai: base)"
    )
    for flag, kwargs in OPENAI_FLAGS.items():
        openai.add_argument(flag, **kwargs)
    ft.set_defaults(func=run)


def _check_backend(args: argparse.Namespace) -> str:
    """The run's backend; a flag that belongs to the other one is an error naming it."""
    from finetune_safety.models.endpoint import is_endpoint

    backend: str = args.backend or ("openai" if is_endpoint(args.base) else "local")
    flags = backend_flags()
    for other in BACKENDS:
        given = [f for f in flags[other] if _given(getattr(args, _dest(f)))]
        if other != backend and given:
            takes = ", ".join(flags[backend])
            raise FinetuneSafetyError(
                f"{given[0]}: a flag of the {other} backend; the {backend} backend takes "
                f"{', '.join(COMMON_FLAGS)} and {takes}"
            )
    return backend


def run(args: argparse.Namespace) -> int:
    if _check_backend(args) == "openai":
        return _openai(args)
    return _local(args)


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


def _local(args: argparse.Namespace) -> int:
    from finetune_safety._util import threads
    from finetune_safety.catalog import finetune, is_toy_base
    from finetune_safety.config.project import cache_dir
    from finetune_safety.finetune.run import job_from_preset

    if args.threads is not None:
        SETTING["threads"].from_command_line(args.threads, "--threads", Path.cwd())
    threads.apply(args.threads)
    if args.data is None or args.out is None:
        raise FinetuneSafetyError("--data and --out are required for local fine-tuning")
    if args.full and args.lora:
        raise FinetuneSafetyError("--full and --lora exclude each other")
    overrides: dict[str, object] = {
        "data_format": args.format or "auto",
        "mix_safety": args.mix_safety or 0,
    }
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
    toy = is_toy_base(args.base)
    job = job_from_preset(
        args.preset, args.base, args.data, args.out, hyper=hyper, toy=toy, **overrides
    )
    print(finetune(job, cache_dir(args.cache_dir), overwrite=bool(args.overwrite)))
    return 0


def _openai(args: argparse.Namespace) -> int:
    """Upload, create the job, poll; the last line of output is the fine-tuned model id."""
    from finetune_safety.finetune.openai_jobs import run_openai_finetune
    from finetune_safety.finetune.presets import get_preset
    from finetune_safety.models.endpoint import is_endpoint, parse

    if args.data is None and args.resume_job is None:
        raise FinetuneSafetyError("--backend openai needs --data (or --resume-job ID)")
    epochs = args.epochs
    if args.preset is not None:
        preset = get_preset(args.preset)
        epochs = preset.openai_epochs if epochs is None else epochs
    endpoint = parse(args.base if is_endpoint(args.base) else f"openai:{args.base}")
    model = run_openai_finetune(
        endpoint.model,
        args.data or Path("-"),
        endpoint,
        epochs,
        suffix=args.suffix,
        poll_interval=args.poll_interval or POLL_INTERVAL,
        resume=args.resume_job,
        data_format=args.format or "auto",
    )
    print(model)
    return 0
