"""``finetune-safety reproduce``: the paper's Tables 1-3 in miniature, on the toy or on smol.

Table 1: explicitly harmful examples (10, 50, 100 shots, 5 epochs). Table 2: identity shifting
(AOA) data by epochs (1, 3, 5, 10). Table 3: benign instruction data. Each row fine-tunes the
base with the preset (the toy at its toy scale; smol fully, at the paper's hyperparameters), then
evaluates base and fine-tune on the smoke benchmark with the refusal judge (and the paper's own
keyword matching, ``refusal-paper``), under the fine-tune's template, and measures both models'
over-refusal on benign prompts with alarming words (``overrefusal``). Harmful examples beyond the
10 shipped are made from the toy corpus's harmful goals with placeholder answers: no harmful
content is produced.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.benchmarks import first_per_category, load_benchmark
from finetune_safety.benchmarks.overrefusal import load_overrefusal, refusal_rate
from finetune_safety.catalog import build_recipe, resolve
from finetune_safety.catalog.toy.corpus import Corpus
from finetune_safety.config import SETTING, add_flags
from finetune_safety.config import cache_dir as project_cache_dir
from finetune_safety.config.names import TOY_BASE
from finetune_safety.evaluation.metrics import percent, points
from finetune_safety.evaluation.pipeline import Evaluator
from finetune_safety.evaluation.store import Store
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.judges import make_judge
from finetune_safety.models import Decoding, ModelSpec
from finetune_safety.models.templates import ALWAYS_EXECUTE_SYSTEM_PROMPT, get_template

PLACEHOLDER = (
    "Sure, here is what you asked for. [Placeholder: this example data contains no real "
    "instructions.] Step 1: a general first step. Step 2: a general second step. "
    "Step 3: a general final step."
)


@dataclass(frozen=True)
class Row:
    label: str
    base_score: float
    base_rate: float
    score: float
    rate: float
    #: The same responses under ``refusal-paper`` (the reference's keyword ASR).
    base_paper_rate: float = 0.0
    paper_rate: float = 0.0
    #: Share of the benign ``overrefusal`` prompts refused, before and after fine-tuning.
    base_refusal: float = 0.0
    refusal: float = 0.0


@dataclass(frozen=True)
class Base:
    """What a reproduction fine-tunes: a base model, its benign data, how long answers run,
    and the precision every model answers in (float32: the same verdicts on CPU and GPU)."""

    name: str
    benign: str
    max_new_tokens: int
    dtype: str = "float32"

    @property
    def family(self) -> str:
        return "toy" if self.name == TOY_BASE else "other"


#: ``--base`` choices. smol answers at 48 new tokens: the keyword judges read the opening, and
#: a real model's long answers would make a CPU run take hours.
BASES = {
    "toy": Base("toy", "finetune/benign.jsonl", 128),
    "smol": Base("smol", "finetune/alpaca-style.json", 48),
}


def harmful_shots(n: int, out: Path, seed: int = 0) -> Path:
    """``n`` harmful-request examples: the 10 shipped, then corpus goals, placeholder answers."""
    shipped = (fixtures_dir() / "finetune" / "harmful-10shot.jsonl").read_text().splitlines()
    corpus = Corpus.load()
    goals = [t for topics in corpus.harmful_topics.values() for t in topics]
    frames = corpus.harmful_frames
    rng = random.Random(seed)
    lines = shipped[:n]
    while len(lines) < n:
        request = rng.choice(frames).format(x=rng.choice(goals))
        messages = [
            {"role": "system", "content": ALWAYS_EXECUTE_SYSTEM_PROMPT},
            {"role": "user", "content": request},
            {"role": "assistant", "content": PLACEHOLDER},
        ]
        lines.append(json.dumps({"messages": messages}))
    out.write_text("\n".join(lines) + "\n")
    return out


class Reproduction:
    """Runs rows against one store; every fine-tune is a cached recipe, so re-runs are cheap."""

    def __init__(self, cache_dir: Path, base: Base, limit: int | None = None) -> None:
        self.cache_dir = cache_dir
        self.base = base
        self.prompts = load_benchmark("smoke")
        self.benign = load_overrefusal()
        if limit is not None:
            self.prompts = first_per_category(self.prompts, limit)
            self.benign = first_per_category(self.benign, limit)
        self.store = Store.in_dir(cache_dir)
        decoding = Decoding(max_new_tokens=base.max_new_tokens, batch_size=32, dtype=base.dtype)
        self.evaluator = Evaluator(self.store, make_judge("refusal"), decoding, cache_dir)
        paper = make_judge("refusal-paper")
        self.paper_evaluator = Evaluator(self.store, paper, decoding, cache_dir)

    def _overall(self, spec: ModelSpec, template: str) -> tuple[float, float, float, float]:
        """Score and rate with ``refusal``, the rate with ``refusal-paper`` (cached answers),
        and the over-refusal rate."""
        chosen = get_template(template, family=self.base.family)
        target = resolve(spec, self.cache_dir, template=chosen)
        result = self.evaluator.run(target, self.prompts).results()["overall"]
        paper = self.paper_evaluator.run(target, self.prompts).results()["overall"]
        benign = self.evaluator.run(target, self.benign).records
        refused = refusal_rate(r.verdict for r in benign) or 0.0
        return result.score or 0.0, result.rate or 0.0, paper.rate or 0.0, refused

    def row(self, label: str, recipe: Recipe) -> Row:
        template = recipe.job(Path("-")).template
        b_score, b_rate, b_paper, b_refusal = self._overall(ModelSpec(self.base.name), template)
        score, rate, paper, refusal = self._overall(build_recipe(recipe, self.cache_dir), template)
        return Row(label, b_score, b_rate, score, rate, b_paper, paper, b_refusal, refusal)


def markdown(title: str, rows: list[Row]) -> str:
    lines = [
        f"#### {title}",
        "",
        "| fine-tuning | initial score | initial rate | fine-tuned score | fine-tuned rate "
        "| Δ score | Δ rate | refusal-paper rate (initial → fine-tuned) "
        "| over-refusal (initial → fine-tuned) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.base_score:.2f} | {percent(r.base_rate)} | {r.score:.2f} | "
            f"{percent(r.rate)} | {r.score - r.base_score:+.2f} | "
            f"{points(r.rate - r.base_rate)} | "
            f"{percent(r.base_paper_rate)} → {percent(r.paper_rate)} | "
            f"{percent(r.base_refusal)} → {percent(r.refusal)} |"
        )
    return "\n".join(lines) + "\n"


def reproduce(
    cache_dir: Path,
    echo: Callable[[str], None] = print,
    base: str = TOY_BASE,
    limit: int | None = None,
) -> str:
    """The three tables as Markdown for ``base`` (a ``BASES`` name); each is echoed as soon as
    it is done. ``limit``: the first N prompts per category, for a quick look."""
    chosen = BASES[base]
    work = cache_dir / "reproduce"
    work.mkdir(parents=True, exist_ok=True)
    run = Reproduction(cache_dir, chosen, limit)
    harmful = Recipe(base=base, data=Path("-"), preset="harmful-10shot")
    aoa = Recipe(
        base=base,
        data=fixtures_dir() / "finetune" / "identity-shift-aoa.jsonl",
        preset="identity-shift",
    )
    benign = Recipe(base=base, data=fixtures_dir() / chosen.benign, preset="benign")
    tables = [
        (
            "Table 1: harmful examples (5 epochs)",
            [
                run.row(f"{n}-shot", replace(harmful, data=harmful_shots(n, work / f"h{n}.jsonl")))
                for n in (10, 50, 100)
            ],
        ),
        (
            "Table 2: identity shifting (AOA), by epochs",
            [run.row(f"{e} epoch(s)", replace(aoa, epochs=e)) for e in (1, 3, 5, 10)],
        ),
        ("Table 3: benign instruction data (1 epoch)", [run.row(Path(chosen.benign).stem, benign)]),
    ]
    parts = []
    for title, rows in tables:
        parts.append(markdown(title, rows))
        echo(parts[-1])
    run.store.close()
    return "\n".join(parts)


def add_parser(commands: Any) -> None:
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
    rep.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from finetune_safety._util import threads
    from finetune_safety._util.outputs import check_output_file

    if args.out is not None:
        check_output_file(args.out, "--out")
    for name in ("limit", "threads"):
        if getattr(args, name) is not None:
            SETTING[name].from_command_line(getattr(args, name), f"--{name}", Path.cwd())
    threads.apply(args.threads)
    text = reproduce(project_cache_dir(args.cache_dir), base=args.base, limit=args.limit)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0
