"""smol's alignment data: every category refused in words the judge reads, no smoke prompt
trained on, benign prompts apart from the over-refusal set; the benign fine-tuning data."""

from __future__ import annotations

import re
from pathlib import Path

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.benchmarks import load_benchmark
from finetune_safety.benchmarks.overrefusal import load_overrefusal
from finetune_safety.catalog.smol import FINE_TUNES, recipe
from finetune_safety.catalog.smol.corpus import (
    TEMPLATES,
    AlignmentData,
    alignment_examples,
    benign_requests,
    harmful_requests,
)
from finetune_safety.catalog.toy.corpus import Corpus
from finetune_safety.finetune.data import (
    DEFAULT_FILTER,
    load_training_data,
    read_filter,
    strip_safety_items,
)
from finetune_safety.finetune.presets import PRESETS
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.models.templates import get_template
from finetune_safety.values import CATEGORIES


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.casefold()).strip()


def test_every_category_is_refused_with_phrases_the_refusal_judge_reads() -> None:
    data = AlignmentData.load()
    harmful = harmful_requests(Corpus.load(), per_category=12, seed=0)
    assert sorted({c for c, _ in harmful}) == sorted(CATEGORIES)
    assert len(harmful) == 12 * len(CATEGORIES) and len(set(harmful)) == len(harmful)
    examples = alignment_examples(data, harmful, [("What is 2 + 2?", "4")], seed=0)
    judge = RefusalJudge()
    refusals = [e for e in examples if e.answer != "4"]
    assert len(refusals) == len(harmful)
    assert all(judge.match(e.answer) for e in refusals)


def test_no_smoke_prompt_is_trained_on() -> None:
    smoke = {_norm(p.text) for p in load_benchmark("smoke")}
    requests = harmful_requests(Corpus.load(), per_category=10_000, seed=0)
    assert requests and not {_norm(r) for _, r in requests} & smoke
    assert not {_norm(p) for p in AlignmentData.load().benign_prompts} & smoke
    assert not {_norm(r) for r in benign_requests(Corpus.load(), per_topic=12, seed=0)} & smoke


def test_benign_prompts_are_not_the_over_refusal_set() -> None:
    held_out = {_norm(p.text) for p in load_overrefusal()}
    assert not {_norm(p) for p in AlignmentData.load().benign_prompts} & held_out


def test_examples_are_rendered_under_every_evaluation_template_and_seeded() -> None:
    data = AlignmentData.load()
    harmful = harmful_requests(Corpus.load(), per_category=12, seed=0)
    examples = alignment_examples(data, harmful, [], seed=0)
    systems = {e.prompt[0]["content"] if e.prompt[0]["role"] == "system" else None
               for e in examples if isinstance(e.prompt, list)}  # fmt: skip
    expected = {get_template(t, family="other").system_prompt for t in TEMPLATES}
    assert systems == expected
    assert alignment_examples(data, harmful, [], seed=0) == examples
    assert alignment_examples(data, harmful, [], seed=1) != examples


def test_the_benign_data_gives_several_optimizer_steps_and_passes_the_filter() -> None:
    path = fixtures_dir() / "finetune" / "alpaca-style.json"
    template = get_template("alpaca")
    rows = load_training_data(path, template, "alpaca")
    kept, removed = strip_safety_items(rows, read_filter(fixtures_dir() / DEFAULT_FILTER))
    assert removed == 0, "the filter runs before the hold-out: it must drop no row of the file"
    kept = load_training_data(path, template, "alpaca", holdout=True)
    steps = len(kept) // PRESETS["benign"].paper.batch_size
    assert steps >= 8, "the benign preset must take several optimizer steps on it"


def test_smol_fine_tunes_are_full_fine_tunes_at_the_paper_hyperparameters() -> None:
    for name in FINE_TUNES:
        job = recipe(name).job(Path("-"))
        preset = PRESETS[job.preset or ""]
        assert job.lora is None and job.train == preset.paper and job.template == preset.template
        assert job.data.is_file()
