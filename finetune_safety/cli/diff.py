"""``finetune-safety diff``: the prompts whose verdicts flipped between two runs."""

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
    diff.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from finetune_safety.report.diff import run as compare

    text, code = compare(args.a, args.b)
    print(text)
    return code
