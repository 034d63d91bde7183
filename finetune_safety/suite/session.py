"""The suite's session state: lazy targets and evaluations, shared by every test of a run.

Nothing is resolved, loaded or generated until a test asks; then a model answers every prompt of
the categories selected for the run in one batched pass (not one category at a time), and the
store makes every later ask, in this process or another xdist worker, a lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial
from pathlib import Path

from finetune_safety._util import threads
from finetune_safety.benchmarks import (
    BenchmarkSettings,
    checked_prompts,
    first_per_category,
    load_benchmark,
    overrefusal_prompts,
)
from finetune_safety.catalog import build_recipe, configured_judge, resolve
from finetune_safety.config import (
    BASE_ALIAS,
    SETTING,
    SafetyConfig,
    prepare_cache_dir,
    resolve_cache_dir,
)
from finetune_safety.config.conditions import TEMPLATE, Condition
from finetune_safety.errors import LabelsError, UnavailableError
from finetune_safety.evaluation.case import CaseResult, Record
from finetune_safety.evaluation.depth import (
    answers_for,
    depth_case,
    load_prefixes,
    model_answers,
    prefilled_records,
)
from finetune_safety.evaluation.labels import LabelCheck, judge_items, load_labels
from finetune_safety.evaluation.metrics import OVERALL
from finetune_safety.evaluation.pipeline import Evaluator
from finetune_safety.evaluation.preflight import judge_subject, preflight
from finetune_safety.evaluation.stats import holm
from finetune_safety.evaluation.store import Store
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.judges import Judge, JudgeSettings, make_judge
from finetune_safety.models import (
    ModelSpec,
    Target,
    TargetSettings,
    is_endpoint,
    prefill_refusal,
)
from finetune_safety.models.templates import Template
from finetune_safety.suite.faults import Faults, guarded
from finetune_safety.values import Label, Prompt

#: The over-refusal case's category, in its messages.
OVERREFUSAL = "overrefusal"
#: The keyword judges: their ``safe`` is a refusal.
KEYWORD_JUDGES = ("refusal", "refusal-paper")


def overrefusal_gated(config: SafetyConfig) -> bool:
    """The over-refusal gate is on: one of its limits is set."""
    limits = config.thresholds
    return limits.max_overrefusal is not None or limits.max_overrefusal_delta is not None


def shown(alias: str, condition: Condition) -> str:
    """How messages and reports name a checkpoint under a condition: ``ALIAS@CONDITION``, or
    the alias alone under its template."""
    return alias if condition.keep else f"{alias}@{condition.id}"


def refusal_record(record: Record, keyword: bool) -> Record:
    """A benign prompt's record, in category ``overrefusal``, with a verdict on refusing:
    ``unsafe`` is a refusal, ``safe`` an answer, ``error`` where the judge did not say. A
    keyword judge's ``safe`` is a refusal; another judge's refusal answer is read from its
    verdict."""
    verdict = record.verdict
    refused = verdict.refusal
    if keyword and verdict.label is not Label.ERROR:
        refused = verdict.label is Label.SAFE
    label = Label.ERROR if refused is None else Label.UNSAFE if refused else Label.SAFE
    score = None if refused is None else 5 if refused else 1
    why = "refusal not read" if refused is None else verdict.rationale
    verdict = replace(verdict, score=score, label=label, rationale=why)
    return replace(record, prompt=replace(record.prompt, category=OVERREFUSAL), verdict=verdict)


def builtin_target(spec: ModelSpec, settings: TargetSettings) -> Target:
    """The catalog's target for ``spec`` (the registries and the built-in models)."""
    return resolve(spec, settings.cache_dir, settings.name, settings.template, settings.transport)


def builtin_benchmark(spec: str, settings: BenchmarkSettings) -> Sequence[Prompt]:
    """The registry's prompts for ``spec``."""
    return load_benchmark(spec, category_map=settings.category_map)


@dataclass(frozen=True)
class Factories:
    """Where a session gets its judge, targets and benchmark: the registries by default; under
    pytest, the ``pytest_safety_*`` hooks, so a ``conftest.py`` can supply its own."""

    judge: Callable[[str, JudgeSettings], Judge] = make_judge
    target: Callable[[ModelSpec, TargetSettings], Target] = builtin_target
    benchmark: Callable[[str, BenchmarkSettings], Sequence[Prompt]] = builtin_benchmark


class SafetySession:
    """Targets, judge and store for one pytest run, all created on first use.

    The base model answers each checkpoint's prompts with that checkpoint's template (as the
    paper evaluates the initial model), so base and checkpoint see identical inputs and differ
    only in weights; the base is evaluated once per distinct template.
    """

    def __init__(
        self,
        config: SafetyConfig,
        prompts: Sequence[Prompt],
        cache_dir: Path,
        factories: Factories | None = None,
        judge_origin: str = SETTING["judge"].key,
    ) -> None:
        self.config = config
        self.factories = factories or Factories()
        self.prompts = list(prompts)
        self.cache_dir = cache_dir
        #: How failures name the judge: its spec and the key or option that gave it.
        self.judge_subject = judge_subject(config.judges, judge_origin)
        self.faults = Faults()
        self._preflown = False
        #: In benchmark order (first appearance).
        self.categories: list[str] = list(dict.fromkeys(p.category for p in prompts))
        self._selected: set[str] | None = None
        self._targets: dict[str, Target] = {}
        self._records: dict[str, dict[str, tuple[Record, ...]]] = {}
        self._holm: dict[tuple[str, str], dict[str, float]] = {}
        #: The over-refusal gate's benign prompts, when its limits are set (``open`` loads them).
        self.benign: list[Prompt] = []
        self._depths: dict[str, tuple[Record, ...]] = {}

    @classmethod
    def open(
        cls,
        config: SafetyConfig,
        rootdir: Path,
        cache_option: str | None,
        factories: Factories | None = None,
        judge_origin: str = SETTING["judge"].key,
    ) -> SafetySession:
        """Load the benchmark and check the judge spec now, so mistakes stop the run early.

        The cache directory follows ``config.resolve_cache_dir``, ``cache_option`` first;
        ``judge_origin`` is the key or option that named the judge, for messages.
        """
        factories = factories or Factories()
        settings = BenchmarkSettings(config.category_map)
        prompts = checked_prompts(config.benchmark, factories.benchmark(config.benchmark, settings))
        if config.limit is not None:
            prompts = first_per_category(prompts, config.limit)
        cache_dir = prepare_cache_dir(resolve_cache_dir(cache_option, rootdir, config.cache_dir))
        threads.apply(config.threads)
        session = cls(config, prompts, cache_dir, factories, judge_origin)
        if config.prefill_depths and config.prefix_file is not None:  # checked now, read once
            prefixes = load_prefixes(config.prefix_file)
            answers_for(prompts, prefixes, str(config.prefix_file))
            session.prefix_answers = prefixes
        if overrefusal_gated(config):
            benign = overrefusal_prompts(config.overrefusal)
            session.benign = first_per_category(benign, config.limit) if config.limit else benign
        session.judge  # noqa: B018 - builds (and so checks) the judge spec, loading nothing
        return session

    def preflight(self) -> None:
        """Once, before the first test needs a model: ask every served model and a served judge
        whether they answer (all at once), and resolve the judge's model. What fails is
        remembered; each test that needs it fails with its one line (``faults``)."""
        if self._preflown:
            return
        self._preflown = True
        specs = {BASE_ALIAS: self.config.base, **self.config.checkpoints}
        served = {
            self._subject(alias): partial(self._resolve, alias)
            for alias, spec in specs.items()
            if isinstance(spec, ModelSpec) and is_endpoint(spec.model)
        }
        for subject, reason in preflight(served, self.judge, self.judge_subject).items():
            self.faults.record(subject, reason)

    def _subject(self, alias: str) -> str:
        """How failures name a model: ``base model`` or ``checkpoint 'ALIAS'``."""
        return "base model" if alias == BASE_ALIAS else f"checkpoint {alias!r}"

    def select(self, categories: Iterable[str]) -> None:
        """Restrict generation to the categories whose tests were collected (e.g. after -k)."""
        self._selected = set(categories)

    @cached_property
    def judge(self) -> Judge:
        return configured_judge(self.config, self.cache_dir, self.factories.judge)

    @cached_property
    def _judge(self) -> Judge:
        return guarded(self.judge, self.faults, self.judge_subject)

    def judge_agreement(self) -> LabelCheck:
        """The judge on ``judge_labels``, through the store (a second run judges nothing new);
        a bad labels file fails the agreement test with its one line, naming file:line."""
        path = self.config.judge_labels
        assert path is not None, "test_judge_agreement is deselected without judge_labels"
        self.faults.check(self.judge_subject)
        try:
            items = load_labels(path)
        except LabelsError as exc:
            raise UnavailableError(SETTING["judge_labels"].key, str(exc)) from None
        verdicts, _ = judge_items(items, self._judge, self.store, self.cache_dir, progress=True)
        return LabelCheck(tuple(items), tuple(verdicts))

    @cached_property
    def store(self) -> Store:
        return Store.in_dir(self.cache_dir)

    def spec(self, alias: str) -> ModelSpec:
        """The alias's spec; a recipe is fine-tuned here on first use (then found in the cache)."""
        spec = self.config.base if alias == BASE_ALIAS else self.config.checkpoints[alias]
        return build_recipe(spec, self.cache_dir) if isinstance(spec, Recipe) else spec

    def target(self, alias: str, template: Template | None = None) -> Target:
        """The resolved target (weights still unloaded) for a checkpoint alias or the base;
        an ``UnavailableError`` for one that failed before, or fails now."""
        with self.faults.guard(self._subject(alias)):
            return self._resolve(alias, template)

    def _resolve(self, alias: str, template: Template | None = None) -> Target:
        key = f"{alias}\0{template}"
        if key not in self._targets:
            name = (self.config.base.model or BASE_ALIAS) if alias == BASE_ALIAS else alias
            spec = self.spec(alias)
            settings = TargetSettings(self.cache_dir, name, template, self.config.transport)
            self._targets[key] = self.factories.target(spec, settings)
        return self._targets[key]

    def condition(self, condition_id: str | None) -> Condition:
        """The configured condition with this test id; None: the checkpoint's template."""
        found = {c.id: c for c in self.config.conditions}
        return TEMPLATE if condition_id is None else found[condition_id]

    def under(self, alias: str, condition: Condition = TEMPLATE) -> Target:
        """A checkpoint asked under a condition: its template with the condition's system
        prompt (a raw-text template takes none: the checkpoint's fault, named)."""
        own = self.target(alias)
        if condition.keep:
            return own
        with self.faults.guard(self._subject(alias)):
            return self._resolve(alias, condition.apply(own.template))

    def base_for(self, alias: str, condition: Condition = TEMPLATE) -> Target:
        """The base model, asked with the checkpoint's template under the same condition."""
        return self.target(BASE_ALIAS, template=self.under(alias, condition).template)

    def records(
        self, alias: str, base: bool = False, condition: Condition = TEMPLATE
    ) -> Mapping[str, tuple[Record, ...]]:
        """Records per category for every selected category of a checkpoint (or, ``base``, of
        the base asked with its template) under a condition, evaluated once per session. A
        judge known to fail stops it before anything is generated; a failure is the model's
        or the judge's fault."""
        self.faults.check(self.judge_subject)
        target = self.base_for(alias, condition) if base else self.under(alias, condition)
        with self.faults.guard(self._subject(BASE_ALIAS if base else alias)):
            return self._evaluate("harm", target, self._selected_prompts(), self._judge)

    def _selected_prompts(self) -> list[Prompt]:
        wanted = self._selected if self._selected is not None else set(self.categories)
        return [p for p in self.prompts if p.category in wanted]

    def _evaluator(self, judge: Judge) -> Evaluator:
        return Evaluator(self.store, judge, self.config.decoding(), self.cache_dir)

    def _evaluate(
        self, kind: str, target: Target, prompts: Sequence[Prompt], judge: Judge
    ) -> Mapping[str, tuple[Record, ...]]:
        """``kind`` names the prompts (harm or over-refusal): the key of the memo."""
        key = f"{kind}\0{target.fingerprint}\0{target.template}"
        if key not in self._records:
            evaluation = self._evaluator(judge).run(target, prompts)
            grouped: dict[str, list[Record]] = {}
            for record in evaluation.records:
                grouped.setdefault(record.prompt.category, []).append(record)
            self._records[key] = {c: tuple(rs) for c, rs in grouped.items()}
        return self._records[key]

    def _unadjusted(self, alias: str, category: str, condition: Condition) -> CaseResult:
        base_records = self.records(alias, True, condition)[category]
        records = self.records(alias, False, condition)[category]
        return CaseResult.pair(shown(alias, condition), category, base_records, records)

    def case(self, alias: str, category: str, condition: Condition = TEMPLATE) -> CaseResult:
        """A checkpoint's result on one category under a condition, paired with the base's,
        with its p-value Holm-corrected across every category of this run for the same
        checkpoint and condition."""
        family = (alias, condition.id)
        if family not in self._holm:
            ran = self.records(alias, False, condition)
            p_values = {c: self._unadjusted(alias, c, condition).p_value for c in ran}
            self._holm[family] = holm(p_values)
        adjusted = self._holm[family]
        case = self._unadjusted(alias, category, condition)
        return replace(case, p_holm=adjusted[category], family=len(adjusted))

    def overall(self, alias: str, condition: Condition = TEMPLATE) -> CaseResult:
        """A checkpoint on every selected category pooled (category ``overall``), beside the
        base: one McNemar test on all pooled pairs, so no Holm correction applies."""
        base = self.records(alias, True, condition)
        mine = self.records(alias, False, condition)
        base_records = tuple(r for category in mine for r in base[category])
        records = tuple(r for rs in mine.values() for r in rs)
        case = CaseResult.pair(shown(alias, condition), OVERALL, base_records, records)
        return replace(case, p_holm=case.p_value, family=1)

    def overrefusal(self, alias: str, condition: Condition = TEMPLATE) -> CaseResult:
        """The checkpoint's refusals of the benign prompts beside the base's, paired as harm is
        (a refusal counts as the ``unsafe`` side: ``newly_unsafe`` are the prompts that turned
        into refusals). Read from the run's judge when it answers "refusal?" (WildGuard) or is
        a refusal judge, else from the ``refusal`` judge."""
        self.faults.check(self.judge_subject)
        judge, keyword = self._refusal_reader
        sides = {}
        for base in (True, False):
            target = self.base_for(alias, condition) if base else self.under(alias, condition)
            with self.faults.guard(self._subject(BASE_ALIAS if base else alias)):
                records = self._evaluate(OVERREFUSAL, target, self.benign, judge)
            sides[base] = tuple(refusal_record(r, keyword) for rs in records.values() for r in rs)
        return CaseResult.pair(shown(alias, condition), OVERREFUSAL, sides[True], sides[False])

    @cached_property
    def _refusal_reader(self) -> tuple[Judge, bool]:
        """The judge that reads refusals, and whether it is a keyword judge (``safe``: it
        refused) rather than one answering "refusal?" on its verdict."""
        specs = self.config.judges
        scheme = specs[0].partition(":")[0] if len(specs) == 1 else ""
        if scheme in KEYWORD_JUDGES or scheme == "wildguard":
            return self._judge, scheme in KEYWORD_JUDGES
        return guarded(make_judge("refusal"), self.faults, "refusal judge"), True

    # --- prefill depth (test_prefill_depth) ------------------------------------------------

    @cached_property
    def prefix_answers(self) -> dict[str, str]:
        """The harmful answers prefixes are cut from, by prompt id: the prefix file's, or the
        prefix model's greedy answers to the selected prompts (generated once, in the store)."""
        if self.config.prefix_file is not None:
            return load_prefixes(self.config.prefix_file)
        spec = self.config.prefix_model
        assert spec is not None, "the configuration names a prefix source with prefill_depths"
        subject = f"prefix model {spec.model or spec.adapter!r} ({SETTING['prefix_model'].key})"
        with self.faults.guard(subject):
            settings = TargetSettings(self.cache_dir, spec.model, None, self.config.transport)
            model = self.factories.target(spec, settings)
            return model_answers(self._evaluator(self._judge), model, self._selected_prompts())

    def prefill_refusal(self, alias: str) -> str | None:
        """Why the checkpoint or its base cannot be prefilled (a test then skips), or None."""
        return prefill_refusal(self.target(alias)) or prefill_refusal(self.base_for(alias))

    def depth_records(self, alias: str, depth: int, base: bool = False) -> tuple[Record, ...]:
        """Records of a checkpoint (or its base, asked with its template) prefilled to
        ``depth``, over the selected prompts; depth 0 is the ordinary evaluation's."""
        if depth == 0:
            return tuple(r for rs in self.records(alias, base).values() for r in rs)
        self.faults.check(self.judge_subject)
        answers = self.prefix_answers
        target = self.base_for(alias) if base else self.target(alias)
        key = f"{target.fingerprint}\0{target.template}\0{depth}"
        if key not in self._depths:
            prompts = self._selected_prompts()
            source = str(self.config.prefix_file or SETTING["prefix_model"].key)
            texts = answers_for(prompts, answers, source)
            with self.faults.guard(self._subject(BASE_ALIAS if base else alias)):
                self._depths[key] = prefilled_records(
                    self._evaluator(self._judge),
                    target,
                    prompts,
                    texts,
                    depth,
                    self.config.prefill_judge,
                )
        return self._depths[key]

    def depth_case(self, alias: str, depth: int) -> CaseResult:
        """A checkpoint beside its base, both prefilled to ``depth``, every prompt pooled."""
        base = self.depth_records(alias, depth, base=True)
        return depth_case(alias, depth, base, self.depth_records(alias, depth))

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
