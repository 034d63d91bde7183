"""The pipeline: render -> store lookup -> generate the misses -> judge the misses -> results.

Results are committed to the store after every batch, so a run killed at any moment resumes where
it stopped. A lock per model (and per judge) makes concurrent processes generate and judge each
item once: the second process waits, re-reads the store and finds the work done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from finetune_safety._util.locks import held
from finetune_safety._util.progress import Progress
from finetune_safety.evaluation.case import Record
from finetune_safety.evaluation.metrics import summarize
from finetune_safety.evaluation.store import Generation, Store, generation_key, verdict_key
from finetune_safety.judges import CombinedJudge, Judge
from finetune_safety.models import (
    Decoding,
    Target,
    check_prompt_lengths,
    decoding_key,
    prefilled,
)
from finetune_safety.values import CategoryResult, Label, Prompt, Verdict

#: Verdicts are committed after every chunk so a killed run loses at most one chunk of judging.
JUDGE_CHUNK = 64
T = TypeVar("T")


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


def _indexed(
    todo: list[int], batches: Iterable[list[tuple[int, T]]]
) -> Iterator[list[tuple[int, T]]]:
    """Batches of ``(position in todo, value)`` as ``(index into the keys, value)``."""
    for batch in batches:
        yield [(todo[j], value) for j, value in batch]


def lookup_or_compute(
    keys: Sequence[str],
    lookup: Callable[[Sequence[str]], dict[str, T]],
    lock: Callable[[], AbstractContextManager[None]],
    compute: Callable[[list[int]], Iterable[Sequence[tuple[int, T]]]],
    save: Callable[[Sequence[tuple[int, T]]], None],
    progress: Callable[[int], Progress],
) -> tuple[list[T], int]:
    """Each key's value, and how many were computed now.

    ``lookup`` finds what the store holds; only if something is missing is ``lock`` taken (so
    concurrent processes compute each key once), the store read again, and ``compute`` called
    with the indexes of the keys still missing, once per distinct key. It yields batches of
    ``(index, value)``; each is ``save``d as it comes, so a killed run resumes where it stopped.
    """
    found = lookup(keys)
    computed = 0
    if len(found) < len(set(keys)):
        with lock():
            found = lookup(keys)
            todo = sorted({key: i for i, key in enumerate(keys) if key not in found}.values())
            batches = compute(todo)
            bar = progress(len(todo))
            try:
                for batch in batches:
                    save(batch)
                    found.update((keys[i], value) for i, value in batch)
                    computed += len(batch)
                    bar.update(len(batch))
            finally:
                bar.close()
    return [found[k] for k in keys], computed


@dataclass(frozen=True)
class Prefill:
    """The start of each answer (one per prompt, in order), cut to ``depth`` units of the
    target (``models.Prefillable``)."""

    depth: int
    prefixes: tuple[str, ...]


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

    def responses(
        self, target: Target, prompts: Sequence[Prompt], prefill: Prefill | None = None
    ) -> tuple[list[str], int]:
        """Every prompt's response and how many were generated now; cached ones load nothing.

        With ``prefill``, each answer starts with its prompt's prefix and the response is the
        model's continuation alone; the key holds the prefix (in the input) and its depth."""
        rendered = [target.template.render(p.text) for p in prompts]
        fingerprint = target.fingerprint
        settings = decoding_key(target, self.decoding)
        if prefill is not None:
            rendered = [prefilled(r, x) for r, x in zip(rendered, prefill.prefixes, strict=True)]
            settings |= {"prefill_depth": prefill.depth}
        keys = [generation_key(fingerprint, r, settings) for r in rendered]

        def generate(todo: list[int]) -> Iterator[list[tuple[int, str]]]:
            inputs = [rendered[i] for i in todo]
            check_prompt_lengths(target, [prompts[i].id for i in todo], inputs, self.decoding)
            return _indexed(todo, target.generate_batches(inputs, self.decoding))

        def save(batch: Sequence[tuple[int, str]]) -> None:
            rows = [Generation(keys[i], fingerprint, prompts[i].id, text) for i, text in batch]
            self.store.put_generations(rows)

        what = f"generating with model {target.name}"
        return lookup_or_compute(
            keys,
            self.store.get_generations,
            lambda: _locked(self.cache_dir, "generate", fingerprint, what=what),
            generate,
            save,
            lambda total: self._progress(total, f"generating ({target.name})"),
        )

    def verdicts(
        self, prompts: Sequence[Prompt], responses: Sequence[str]
    ) -> tuple[list[Verdict], int]:
        """Every response's verdict and how many were judged now; errors are never cached.
        Combined judges judge one by one, each through the store under its own id (adding a
        judge re-judges nothing with the others); ``judged`` counts each judge's work."""
        if not isinstance(self.judge, CombinedJudge):
            return self._verdicts(self.judge, prompts, responses)
        each = [self._verdicts(j, prompts, responses, j.judge_id) for j in self.judge.members]
        return self.judge.combined([v for v, _ in each]), sum(n for _, n in each)

    def _verdicts(
        self, judge: Judge, prompts: Sequence[Prompt], responses: Sequence[str], named: str = ""
    ) -> tuple[list[Verdict], int]:
        """``verdicts`` for one judge; ``named``: the judge in the progress line."""
        judge_id = judge.judge_id
        keys = [verdict_key(judge_id, p.text, r) for p, r in zip(prompts, responses, strict=True)]

        def judged(todo: list[int]) -> Iterator[list[tuple[int, Verdict]]]:
            for start in range(0, len(todo), JUDGE_CHUNK):
                part = todo[start : start + JUDGE_CHUNK]
                verdicts = judge.judge([(prompts[i], responses[i]) for i in part])
                yield list(zip(part, verdicts, strict=True))

        def save(batch: Sequence[tuple[int, Verdict]]) -> None:
            new = [(keys[i], v) for i, v in batch]
            self.store.put_verdicts((k, v) for k, v in new if v.label != Label.ERROR)
            self.store.put_errors((k, v) for k, v in new if v.label == Label.ERROR)

        return lookup_or_compute(
            keys,
            self.store.get_verdicts,
            lambda: _locked(self.cache_dir, "judge", judge_id, what=f"judging with {judge_id}"),
            judged,
            save,
            lambda total: self._progress(total, f"judging ({named})" if named else "judging"),
        )

    def run(self, target: Target, prompts: Sequence[Prompt]) -> Evaluation:
        """Generate and judge what is missing, then assemble every prompt's record."""
        responses, generated = self.responses(target, prompts)
        verdicts, judged = self.verdicts(prompts, responses)
        records = tuple(
            Record(p, r, v) for p, r, v in zip(prompts, responses, verdicts, strict=True)
        )
        return Evaluation(target.fingerprint, records, generated, judged)
