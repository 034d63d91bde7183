from finetune_safety.gate import *  # noqa: F403  (the gate tests, parametrized by the plugin)
