"""``finetune-safety toy build`` and ``smol build``: build the embedded models now (else on
first use)."""

from __future__ import annotations

import argparse
from typing import Any

from finetune_safety.config import add_flags, cache_dir


def add_parsers(commands: Any) -> None:
    toy = commands.add_parser("toy", help="the embedded toy models")
    toy_commands = toy.add_subparsers(dest="toy_command", required=True)
    build = toy_commands.add_parser("build", help="build the toy models now (else on first use)")
    add_flags(build, ["cache_dir"])
    build.set_defaults(func=toy_build)

    smol = commands.add_parser("smol", help="smol: SmolLM2-135M-Instruct, safety-aligned here")
    smol_commands = smol.add_subparsers(dest="smol_command", required=True)
    smol_build = smol_commands.add_parser(
        "build", help="convert and align smol now (else on first use of --safety-base smol)"
    )
    add_flags(smol_build, ["cache_dir"])
    smol_build.set_defaults(func=smol_build_command)


def toy_build(args: argparse.Namespace) -> int:
    from finetune_safety.catalog.toy import ensure_toy

    print(ensure_toy(cache_dir(args.cache_dir)))
    return 0


def smol_build_command(args: argparse.Namespace) -> int:
    from finetune_safety.catalog.smol import ensure_smol

    print(ensure_smol(cache_dir(args.cache_dir)))
    return 0
