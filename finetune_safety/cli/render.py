"""``finetune-safety render``: exactly what a model receives, for debugging templates.

It prints the token sequence the model is given, decoded with its special tokens visible (a BOS
the tokenizer adds, the chat template's markers). With ``--train`` it prints a training example
as the trainer encodes it, the span that carries loss between ``⟦`` and ``⟧``. Loads the
tokenizer only, never the weights.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from finetune_safety.config.schema import add_flags
from finetune_safety.errors import FinetuneSafetyError

LEARN_START, LEARN_END = "⟦", "⟧"
DEFAULT_ANSWER = "[the answer the model learns]"


def add_parser(commands: Any) -> None:
    """The ``render`` subcommand (wired into the CLI's subparsers)."""
    render = commands.add_parser("render", help="print exactly what a model receives")
    render.add_argument("instruction", help="the user instruction to render")
    render.add_argument("--model", help="toy name, directory, GGUF file, hub id or openai:MODEL")
    render.add_argument("--adapter", help="PEFT adapter directory")
    render.add_argument("--template", help="template (default: the checkpoint's, else plain)")
    render.add_argument("--input", default="", help="an input/context (Alpaca, Dolly templates)")
    render.add_argument(
        "--train", action="store_true", help="a training example, the loss span in ⟦ ⟧"
    )
    render.add_argument("--answer", default=DEFAULT_ANSWER, help="the answer for --train")
    render.add_argument("--max-length", type=int, default=512, help="training cut (--train)")
    add_flags(render, ["cache_dir"])
    render.set_defaults(func=run)


def render_text(tokenizer: Any, prompt: Any) -> str:
    """The prompt's tokens decoded with special tokens kept: what the model really sees."""
    from finetune_safety.models.templates import encode_prompt

    return str(tokenizer.decode(encode_prompt(tokenizer, prompt), skip_special_tokens=False))


def render_training(tokenizer: Any, prompt: Any, answer: str, max_length: int) -> str:
    """A training example as encoded, the tokens that carry loss between the markers."""
    from finetune_safety.finetune.data import Example
    from finetune_safety.finetune.trainer import IGNORE_INDEX, encode

    ids, labels = encode(tokenizer, Example(prompt, answer, "the example"), max_length)
    masked = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(ids))
    shown = tokenizer.decode(ids[:masked], skip_special_tokens=False)
    learned = tokenizer.decode(ids[masked:], skip_special_tokens=False)
    return f"{shown}{LEARN_START}{learned}{LEARN_END}"


def run(args: argparse.Namespace) -> int:
    from finetune_safety.catalog import resolve
    from finetune_safety.config.project import cache_dir
    from finetune_safety.models import ModelSpec
    from finetune_safety.models.hf import HFTarget

    if args.max_length <= 0:
        raise FinetuneSafetyError("--max-length must be positive")
    # --model names the model, as in evaluate: a directory that also holds an adapter is the model
    full_model = args.model is not None
    spec = ModelSpec(args.model, args.adapter, args.template, full_model=full_model)
    target = resolve(spec, cache_dir(args.cache_dir))
    prompt = target.template.render(args.instruction, args.input)
    # The whole text first: an error (no tokenizer, a prompt over --max-length) is then the only
    # output, not a header followed by an error.
    if not isinstance(target, HFTarget):  # a server applies its own chat template
        text = json.dumps(prompt, ensure_ascii=False, indent=2)
    elif args.train:
        text = render_training(target.load_tokenizer(), prompt, args.answer, args.max_length)
    else:
        text = render_text(target.load_tokenizer(), prompt)
    print(f"# {target.name}, template {target.template.name}\n{text}")
    return 0
