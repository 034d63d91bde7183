"""``finetune-safety``: evaluate a model's harmfulness per category, fine-tune with the paper's
attacks, reproduce its tables, diff two runs, and build the embedded models (the toy, smol).
One module per subcommand; this one wires them and turns package errors into one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from finetune_safety._util import progress
from finetune_safety.cli import (
    build,
    depth,
    diff,
    evaluate,
    finetune,
    judge_check,
    render,
    reproduce,
)
from finetune_safety.errors import FinetuneSafetyError

DESCRIPTION = (
    "Evaluate a model's harmfulness per category, fine-tune with the paper's attacks, "
    "reproduce its tables, diff two runs, and build the embedded models (the toy, smol)."
)


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``evaluate`` mirrors the options of the pytest suite."""
    parser = argparse.ArgumentParser(prog="finetune-safety", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate.add_parser(commands)
    finetune.add_parser(commands)
    reproduce.add_parser(commands)
    diff.add_parser(commands)
    judge_check.add_parser(commands)
    depth.add_parser(commands)
    render.add_parser(commands)
    build.add_parsers(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("finetune-safety")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


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
