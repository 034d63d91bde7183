"""``finetune-safety diff``: the prompts whose verdicts flipped between two runs, after what
differs in how the runs were made."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    diff = commands.add_parser(
        "diff", help="prompts that flipped between two runs (report JSON or snapshot directory)"
    )
    diff.add_argument("a", type=Path, help="the earlier run: report JSON or snapshot directory")
    diff.add_argument("b", type=Path, help="the later run")
    diff.add_argument(
        "--allow-different-judge",
        "--force",
        action="store_true",
        dest="allow_different",
        help="compare runs made with different judges or benchmarks (exit 2 otherwise)",
    )
    diff.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """How the runs differ first; then the flips, unless a judge or benchmark differs."""
    from finetune_safety.report.diff import DiffError
    from finetune_safety.report.diff import run as compare

    comparison = compare(args.a, args.b)
    for line in comparison.differences:
        print(line)
    if comparison.incomparable and not args.allow_different:
        raise DiffError(comparison.incomparable)
    print(comparison.text)
    return comparison.code
