"""The pipeline (store lookup, generate the misses, judge the misses), the result store, the
paired case of a checkpoint beside its base, and the statistics over it."""

from finetune_safety.evaluation.case import CaseResult, Deltas, Record, response_sha256
from finetune_safety.evaluation.metrics import OVERALL, format_table, percent, points, summarize
from finetune_safety.evaluation.pipeline import Evaluation, Evaluator, lookup_or_compute
from finetune_safety.evaluation.stats import holm, mcnemar_one_sided, min_flips, wilson
from finetune_safety.evaluation.store import Generation, Store, generation_key, verdict_key

__all__ = [
    "OVERALL", "CaseResult", "Deltas", "Evaluation", "Evaluator", "Generation", "Record",
    "Store", "format_table", "generation_key", "holm", "lookup_or_compute",
    "mcnemar_one_sided", "min_flips", "percent", "points", "response_sha256", "summarize",
    "verdict_key", "wilson",
]  # fmt: skip
