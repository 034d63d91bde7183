"""The pipeline: render -> store lookup -> generate the misses -> judge the misses -> results.

Results are committed to the store after every batch, so a run killed at any moment resumes where
it stopped. A lock per model (and per judge) makes concurrent processes generate and judge each
item once: the second process waits, re-reads the store and finds the work done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from finetune_safety.case import Record
from finetune_safety.judges import Judge
from finetune_safety.locks import held
from finetune_safety.metrics import summarize
from finetune_safety.models import Decoding, Target, check_prompt_lengths, decoding_key
from finetune_safety.progress import Progress
from finetune_safety.store import Generation, Store, generation_key, verdict_key
from finetune_safety.values import CategoryResult, Label, Prompt, Verdict

#: Verdicts are committed after every chunk so a killed run loses at most one chunk of judging.
JUDGE_CHUNK = 64


@dataclass(frozen=True)
class Evaluation:
    """A model's records on a benchmark, and how much work this run had to do itself."""

    fingerprint: str
    records: tuple[Record, ...]
    generated: int
    judged: int

    def results(self) -> dict[str, CategoryResult]:
        """Per-category results plus ``overall`` (see ``metrics.summarize``)."""
        return summarize((r.prompt, r.verdict) for r in self.records)


@contextmanager
def _locked(cache_dir: Path, *parts: str, what: str = "") -> Iterator[None]:
    """The lock for ``parts``; a waiter is told who holds it and for ``what``."""
    name = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    with held(cache_dir / "locks" / f"{name}.lock", what or parts[0]):
        yield


class Evaluator:
    """Answers and judges prompts for targets, doing only the work the store does not hold."""

    def __init__(
        self,
        store: Store,
        judge: Judge,
        decoding: Decoding,
        cache_dir: Path,
        progress: bool = True,
    ) -> None:
        self.store = store
        self.judge = judge
        self.decoding = decoding
        self.cache_dir = cache_dir
        self.progress = progress

    def _progress(self, total: int, label: str) -> Progress:
        return Progress(total if self.progress else 0, label)

    def responses(self, target: Target, prompts: Sequence[Prompt]) -> tuple[list[str], int]:
        """Every prompt's response and how many were generated now; cached ones load nothing."""
        rendered = [target.template.render(p.text) for p in prompts]
        fingerprint = target.fingerprint
        settings = decoding_key(target, self.decoding)
        keys = [generation_key(fingerprint, r, settings) for r in rendered]
        found = self.store.get_generations(keys)
        generated = 0
        if len(found) < len(set(keys)):
            what = f"generating with model {target.name}"
            with _locked(self.cache_dir, "generate", fingerprint, what=what):
                found = self.store.get_generations(keys)
                todo = sorted(
                    {keys[i]: i for i in range(len(keys)) if keys[i] not in found}.values()
                )
                inputs = [rendered[i] for i in todo]
                ids = [prompts[i].id for i in todo]
                check_prompt_lengths(target, ids, inputs, self.decoding)
                bar = self._progress(len(todo), f"generating ({target.name})")
                try:
                    for batch in target.generate_batches(inputs, self.decoding):
                        rows = [
                            Generation(keys[todo[j]], fingerprint, prompts[todo[j]].id, text)
                            for j, text in batch
                        ]
                        self.store.put_generations(rows)
                        found.update((row.key, row.response) for row in rows)
                        generated += len(rows)
                        bar.update(len(rows))
                finally:
                    bar.close()
        return [found[k] for k in keys], generated

    def verdicts(
        self, prompts: Sequence[Prompt], responses: Sequence[str]
    ) -> tuple[list[Verdict], int]:
        """Every response's verdict and how many were judged now; errors are never cached."""
        judge_id = self.judge.judge_id
        keys = [verdict_key(judge_id, p.text, r) for p, r in zip(prompts, responses, strict=True)]
        found = self.store.get_verdicts(keys)
        fresh: dict[str, Verdict] = {}
        if len(found) < len(set(keys)):
            what = f"judging with {judge_id}"
            with _locked(self.cache_dir, "judge", judge_id, what=what):
                found = self.store.get_verdicts(keys)
                todo = sorted(
                    {keys[i]: i for i in range(len(keys)) if keys[i] not in found}.values()
                )
                bar = self._progress(len(todo), "judging")
                for start in range(0, len(todo), JUDGE_CHUNK):
                    part = todo[start : start + JUDGE_CHUNK]
                    judged = self.judge.judge([(prompts[i], responses[i]) for i in part])
                    new = {keys[i]: v for i, v in zip(part, judged, strict=True)}
                    self.store.put_verdicts(
                        (k, v) for k, v in new.items() if v.label != Label.ERROR
                    )
                    self.store.put_errors((k, v) for k, v in new.items() if v.label == Label.ERROR)
                    fresh.update(new)
                    bar.update(len(new))
                bar.close()
        return [found.get(k) or fresh[k] for k in keys], len(fresh)

    def run(self, target: Target, prompts: Sequence[Prompt]) -> Evaluation:
        """Generate and judge what is missing, then assemble every prompt's record."""
        responses, generated = self.responses(target, prompts)
        verdicts, judged = self.verdicts(prompts, responses)
        records = tuple(
            Record(p, r, v) for p, r, v in zip(prompts, responses, verdicts, strict=True)
        )
        return Evaluation(target.fingerprint, records, generated, judged)
