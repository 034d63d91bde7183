"""``finetune-safety reproduce``: the paper's Tables 1-3 in miniature, on the toy model.

Table 1: explicitly harmful examples (10, 50, 100 shots, 5 epochs). Table 2: identity shifting
(AOA) data by epochs (1, 3, 5, 10). Table 3: benign instruction data. Each row fine-tunes the toy
with the preset's toy scale, then evaluates base and fine-tune on the smoke benchmark with the
refusal judge (and the paper's own keyword matching, ``refusal-paper``), under the fine-tune's
template. Harmful examples beyond the 10 shipped are made
from the toy corpus's harmful goals with placeholder answers: no harmful content is produced.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from finetune_safety.benchmark import load_benchmark
from finetune_safety.catalog import build_recipe, resolve
from finetune_safety.evaluate import Evaluator
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.judges import make_judge
from finetune_safety.metrics import percent, points
from finetune_safety.models import Decoding, ModelSpec
from finetune_safety.resources import fixtures_dir
from finetune_safety.store import Store
from finetune_safety.templates import ALWAYS_EXECUTE_SYSTEM_PROMPT, get_template
from finetune_safety.toy.corpus import Corpus

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

    def __init__(self, cache_dir: Path, max_new_tokens: int = 128) -> None:
        self.cache_dir = cache_dir
        self.prompts = load_benchmark("smoke")
        self.store = Store.in_dir(cache_dir)
        decoding = Decoding(max_new_tokens=max_new_tokens, batch_size=32)
        self.evaluator = Evaluator(self.store, make_judge("refusal"), decoding, cache_dir)
        paper = make_judge("refusal-paper")
        self.paper_evaluator = Evaluator(self.store, paper, decoding, cache_dir)

    def _overall(self, spec: ModelSpec, template: str) -> tuple[float, float, float]:
        """Score and rate with ``refusal``, and the rate with ``refusal-paper`` (cached answers)."""
        target = resolve(spec, self.cache_dir, template=get_template(template, family="toy"))
        result = self.evaluator.run(target, self.prompts).results()["overall"]
        paper = self.paper_evaluator.run(target, self.prompts).results()["overall"]
        return result.score or 0.0, result.rate or 0.0, paper.rate or 0.0

    def row(self, label: str, recipe: Recipe) -> Row:
        template = recipe.job(Path("-")).template
        base_score, base_rate, base_paper = self._overall(ModelSpec("toy"), template)
        score, rate, paper = self._overall(build_recipe(recipe, self.cache_dir), template)
        return Row(label, base_score, base_rate, score, rate, base_paper, paper)


def markdown(title: str, rows: list[Row]) -> str:
    lines = [
        f"#### {title}",
        "",
        "| fine-tuning | initial score | initial rate | fine-tuned score | fine-tuned rate "
        "| Δ score | Δ rate | refusal-paper rate (initial → fine-tuned) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.base_score:.2f} | {percent(r.base_rate)} | {r.score:.2f} | "
            f"{percent(r.rate)} | {r.score - r.base_score:+.2f} | "
            f"{points(r.rate - r.base_rate)} | "
            f"{percent(r.base_paper_rate)} → {percent(r.paper_rate)} |"
        )
    return "\n".join(lines) + "\n"


def reproduce(cache_dir: Path, echo: Callable[[str], None] = print) -> str:
    """The three tables as Markdown; each is echoed as soon as it is done."""
    work = cache_dir / "reproduce"
    work.mkdir(parents=True, exist_ok=True)
    run = Reproduction(cache_dir)
    harmful = Recipe(base="toy", data=Path("-"), preset="harmful-10shot")
    aoa = Recipe(
        base="toy",
        data=fixtures_dir() / "finetune" / "identity-shift-aoa.jsonl",
        preset="identity-shift",
    )
    benign = Recipe(base="toy", data=fixtures_dir() / "finetune" / "benign.jsonl", preset="benign")
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
        ("Table 3: benign instruction data (1 epoch)", [run.row("benign", benign)]),
    ]
    parts = []
    for title, rows in tables:
        parts.append(markdown(title, rows))
        echo(parts[-1])
    run.store.close()
    return "\n".join(parts)
