"""Fine-tuning: the one training loop used by the toy models and by ``finetune-safety finetune``."""
