"""``python -m finetune_safety``: the command line, also as ``torchrun -m finetune_safety`` and
``accelerate launch -m finetune_safety`` start it, once per process."""

import sys

from finetune_safety.cli.app import main

sys.exit(main())
