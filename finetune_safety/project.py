"""The project a command runs in: the nearest ``pyproject.toml`` upward, its table, its cache.

The CLI finds the project as pytest finds its rootdir, so a command run in a subdirectory reads
the project's ``[tool.finetune_safety]`` and uses its cache instead of rebuilding the toy.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from finetune_safety.config import Overrides, SafetyConfig, load_config, read_table
from finetune_safety.store import CACHE_ENV, prepare_cache_dir, resolve_cache_dir


def project_root(start: Path) -> Path:
    """The nearest directory upward holding a pyproject.toml (as pytest finds its rootdir),
    else ``start``: ``evaluate`` in a subdirectory uses the project's cache."""
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    return start


def cache_dir(option: str | None) -> Path:
    """``--cache-dir``, else ``$FINETUNE_SAFETY_CACHE``, else the table's ``cache_dir``, else
    ``.finetune_safety`` at the project root; created if missing."""
    root = project_root(Path.cwd())
    if option is None and not os.environ.get(CACHE_ENV):
        table = read_table(root / "pyproject.toml") or {}
        configured = table.get("cache_dir")
        option = configured if isinstance(configured, str) else None
    return prepare_cache_dir(resolve_cache_dir(option, root))


def project_config(flags: Overrides, only: Collection[str]) -> SafetyConfig:
    """The project's table (the settings in ``only``), then the flags, whose relative paths
    start from the working directory."""
    return load_config(project_root(Path.cwd()), flags, only=only, base=Path.cwd())
