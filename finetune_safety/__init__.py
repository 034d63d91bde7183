"""finetune-safety: a pytest-native safety regression suite for fine-tuned chat models.

This module stays import-light (no torch, transformers or openai) so that the pytest plugin and
the command line start fast; heavy libraries are imported inside the functions that need them.
"""

from finetune_safety.values import CATEGORIES, CategoryResult, Label, Prompt, Verdict

__all__ = ["CATEGORIES", "CategoryResult", "Label", "Prompt", "Verdict"]
__version__ = "0.1.0"
