"""The project a run belongs to: the nearest ``pyproject.toml`` upward, its table, its cache.

The CLI finds the project as pytest finds its rootdir, so a command run in a subdirectory reads
the project's ``[tool.finetune_safety]`` and uses its cache instead of rebuilding the toy. The
cache directory's rule lives here alone, for the plugin and every command.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from finetune_safety.config.loading import Overrides, SafetyConfig, load_config, read_table
from finetune_safety.errors import StoreError

DEFAULT_CACHE_DIRNAME = ".finetune_safety"
CACHE_ENV = "FINETUNE_SAFETY_CACHE"


def resolve_cache_dir(
    option: str | Path | None, rootdir: Path, configured: str | Path | None = None
) -> Path:
    """The cache directory: the option (``--safety-cache-dir``, ``--cache-dir``), else
    ``$FINETUNE_SAFETY_CACHE``, else the table's ``cache_dir`` (``configured``), else
    ``.finetune_safety``. Relative paths start from ``rootdir`` (as pytest's ``cache_dir``
    does), so the store does not move when a run starts in a subdirectory."""
    chosen = option if option not in (None, "") else os.environ.get(CACHE_ENV)
    path = Path(chosen or configured or DEFAULT_CACHE_DIRNAME).expanduser()
    return (rootdir / path).resolve()


def prepare_cache_dir(path: Path) -> Path:
    """Create the cache directory now, so a path that cannot be one fails before any work."""
    where = "(--safety-cache-dir, cache_dir, --cache-dir or $FINETUNE_SAFETY_CACHE)"
    if path.exists() and not path.is_dir():
        raise StoreError(f"cache directory {path} is a file; remove it or choose another {where}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create cache directory {path}: {exc.strerror or exc}; choose another {where}"
        ) from None
    return path


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
    configured = (read_table(root / "pyproject.toml") or {}).get("cache_dir")
    configured = configured if isinstance(configured, str) else None
    return prepare_cache_dir(resolve_cache_dir(option, root, configured))


def project_config(flags: Overrides, only: Collection[str]) -> SafetyConfig:
    """The project's table (the settings in ``only``), then the flags, whose relative paths
    start from the working directory."""
    return load_config(project_root(Path.cwd()), flags, only=only, base=Path.cwd())
