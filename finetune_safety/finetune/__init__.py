"""Fine-tuning: the paper's attacks as presets, data loaders, the training loop, recipes
(checkpoints defined by how to make them) and OpenAI fine-tuning jobs."""

from finetune_safety.finetune.data import Example, Instruction, load_training_data
from finetune_safety.finetune.openai_jobs import run_openai_finetune, validate_openai_jsonl
from finetune_safety.finetune.presets import PRESETS, Preset, get_preset
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.finetune.run import FinetuneJob, check_job, job_from_preset, train_from
from finetune_safety.finetune.trainer import LoraSettings, TrainConfig, TrainingError

__all__ = [
    "PRESETS", "Example", "FinetuneJob", "Instruction", "LoraSettings", "Preset", "Recipe",
    "TrainConfig", "TrainingError", "check_job", "get_preset", "job_from_preset",
    "load_training_data", "run_openai_finetune", "train_from",
    "validate_openai_jsonl",
]  # fmt: skip
