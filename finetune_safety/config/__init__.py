"""The run's settings: the ``[tool.finetune_safety]`` table and the ``--safety-*`` options
(one schema, ``config.schema``), checked into a ``SafetyConfig``; the project and its cache."""

from finetune_safety.config.checks import MODES, TABLE, ConfigError
from finetune_safety.config.loading import (
    OVERRIDABLE,
    Overrides,
    SafetyConfig,
    Thresholds,
    apply_overrides,
    from_table,
    load_config,
    read_table,
)
from finetune_safety.config.project import (
    CACHE_ENV,
    cache_dir,
    prepare_cache_dir,
    project_config,
    project_root,
    resolve_cache_dir,
)
from finetune_safety.config.schema import SETTING, SETTINGS, add_flags, add_options
from finetune_safety.config.setting import Setting
from finetune_safety.config.specs import BASE_ALIAS, SPEC_FIELDS, checkpoints, model_spec, recipe

__all__ = [
    "BASE_ALIAS", "CACHE_ENV", "MODES", "OVERRIDABLE", "SETTING", "SETTINGS", "SPEC_FIELDS",
    "TABLE", "ConfigError", "Overrides", "SafetyConfig", "Setting", "Thresholds", "add_flags",
    "add_options", "apply_overrides", "cache_dir", "checkpoints", "from_table", "load_config",
    "model_spec", "prepare_cache_dir", "project_config", "project_root", "read_table", "recipe",
    "resolve_cache_dir",
]  # fmt: skip
