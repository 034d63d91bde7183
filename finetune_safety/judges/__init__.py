"""Judges: (prompt, response) -> verdict. ``make_judge`` builds one from a spec through the
registry that ``register_judge`` and the ``finetune_safety.judges`` entry points extend; the
classifier judges (Llama Guard, HarmBench, WildGuard) come with a HEx-PHI coverage table."""

from finetune_safety.judges.classifier import LocalClassifierJudge, ServedClassifierJudge
from finetune_safety.judges.combined import COMBINES, CombinedJudge, combine
from finetune_safety.judges.coverage import COVERAGE, coverage_note, coverage_notes
from finetune_safety.judges.refusal import (
    PAPER_PHRASES,
    REFUSAL_PHRASES,
    PaperRefusalJudge,
    RefusalJudge,
)
from finetune_safety.judges.registry import (
    JUDGES,
    KNOWN_JUDGES,
    Judge,
    JudgeFactory,
    JudgeSettings,
    Probed,
    make_judge,
    register_judge,
)
from finetune_safety.judges.rubric import HFRubricJudge, JudgePrompt, OpenAIRubricJudge

__all__ = [
    "COMBINES", "COVERAGE", "JUDGES", "KNOWN_JUDGES", "PAPER_PHRASES", "REFUSAL_PHRASES",
    "CombinedJudge", "HFRubricJudge", "Judge", "JudgeFactory", "JudgePrompt", "JudgeSettings",
    "LocalClassifierJudge", "OpenAIRubricJudge", "PaperRefusalJudge", "Probed", "RefusalJudge",
    "ServedClassifierJudge", "combine", "coverage_note", "coverage_notes", "make_judge",
    "register_judge",
]  # fmt: skip
