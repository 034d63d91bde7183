"""``python -m finetune_safety.cli``."""

import sys

from finetune_safety.cli.app import main

sys.exit(main())
