"""Judges: (prompt, response) -> verdict. ``make_judge`` builds one from a spec through the
registry that ``register_judge`` and the ``finetune_safety.judges`` entry points extend."""

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
    "JUDGES", "KNOWN_JUDGES", "PAPER_PHRASES", "REFUSAL_PHRASES", "HFRubricJudge", "Judge",
    "JudgeFactory", "JudgePrompt", "JudgeSettings", "OpenAIRubricJudge", "PaperRefusalJudge",
    "Probed", "RefusalJudge", "make_judge", "register_judge",
]  # fmt: skip
