"""The ``finetune-safety`` command line, one module per subcommand."""

from finetune_safety.cli.app import build_parser, main
from finetune_safety.cli.evaluate import JUDGE_ERRORS_EXIT

__all__ = ["JUDGE_ERRORS_EXIT", "build_parser", "main"]
