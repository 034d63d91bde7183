"""The suite's configuration: a ``[tool.finetune_safety]`` table, overridden by ``--safety-*``.

Every key is checked before any test runs; a mistake is reported as ``ConfigError`` naming the
key or option, which the plugin turns into a pytest usage error (exit code 4). Which keys and
options exist, their defaults and their checks are declared once, in ``config.schema``.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from finetune_safety.config.checks import TABLE, ConfigError, check
from finetune_safety.config.conditions import Condition
from finetune_safety.config.names import SMOL_BASE, SMOL_FINE_TUNES, TOY_FINE_TUNES
from finetune_safety.config.schema import SETTING, SETTINGS, default, table_keys
from finetune_safety.config.setting import THRESHOLDS, Setting
from finetune_safety.errors import ConfigWarning
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.judges.registry import JudgeSettings
from finetune_safety.models.endpoint import Transport, redact
from finetune_safety.models.target import Decoding, ModelSpec, Target
from finetune_safety.values import CATEGORIES

#: Where each transport setting goes in ``Transport``.
_TRANSPORT = {
    "concurrency": "concurrency",
    "request_timeout": "timeout",
    "max_retries": "max_retries",
}
_LIMITS = table_keys(THRESHOLDS)
#: Limits of the whole run, not of a category: the over-refusal gate's.
_RUN_LIMITS = ("max_overrefusal", "max_overrefusal_delta")


@dataclass(frozen=True)
class Thresholds:
    """Gate limits; ``None`` switches a limit off. Rates are fractions (0.1 = 10%)."""

    max_rate: float | None = default("max_rate")
    max_rate_delta: float | None = default("max_rate_delta")
    max_score_delta: float | None = default("max_score_delta")
    max_judge_errors: int = default("max_judge_errors")
    #: Share of a category's prompts that must get a verdict (not an error) on each side, or the
    #: gate fails whatever ``max_judge_errors`` allows: a rate over too few verdicts means nothing.
    min_judged: float = default("min_judged")
    #: ``delta`` gates on the raw rate rise; ``significant`` also needs Holm-corrected p < alpha.
    mode: str = default("mode")
    alpha: float = default("alpha")
    #: The over-refusal gate (run-wide, never per category); None: off.
    max_overrefusal: float | None = default("max_overrefusal")
    max_overrefusal_delta: float | None = default("max_overrefusal_delta")

    @property
    def significance(self) -> float | None:
        """``alpha`` when the gate tests significance, else None (no small-sample notes)."""
        return self.alpha if self.mode == "significant" else None


@dataclass(frozen=True)
class SafetyConfig:
    """Everything the suite needs to know, validated."""

    base: ModelSpec = field(default_factory=lambda: default("base"))
    checkpoints: Mapping[str, ModelSpec | Recipe] = field(
        default_factory=lambda: dict(default("checkpoints"))
    )
    benchmark: str = default("benchmark")
    category_map: Mapping[int, str] | None = None
    #: One judge spec, or several (each judges every answer; ``judge_combine`` decides).
    judge: str | tuple[str, ...] = default("judge")
    #: With several judges: ``any`` (unsafe if any judge says unsafe) or ``all``.
    judge_combine: str = default("judge_combine")
    #: A judge prompt file the user brings (rubric judges), and the judge's reply budget.
    judge_prompt: Path | None = None
    judge_max_tokens: int | None = None
    #: P(unsafe) from which a classifier judge's answer is unsafe (llama-guard, with logprobs).
    judge_threshold: float = default("judge_threshold")
    #: Labelled answers the judge is measured against once per session (test_judge_agreement),
    #: and the kappa below which that test fails.
    judge_labels: Path | None = None
    min_judge_kappa: float = default("min_judge_kappa")
    max_new_tokens: int = default("max_new_tokens")
    #: ``auto``: the largest batch whose KV cache fits the free GPU memory; 16 on the CPU.
    batch_size: int | Literal["auto"] = default("batch_size")
    #: ``auto``: bf16 on CUDA, float32 on the CPU and for the toy; part of the generation key.
    dtype: str = default("dtype")
    cache_dir: Path | None = None
    transport: Transport = field(default_factory=Transport)
    thresholds: Thresholds = Thresholds()
    category_thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    #: torch threads for the whole run (xdist workers split them); None: torch's default.
    threads: int | None = None
    #: Longest prompt (in tokens) a local model is asked; longer ones stop the run, named.
    max_prompt_tokens: int | None = None
    #: Only the first N prompts of each category (a quick look), or all.
    limit: int | None = None
    #: A checkpoint/category without a recorded snapshot fails instead of being skipped.
    snapshot_strict: bool = default("snapshot_strict")
    #: The system prompts the gate evaluates under; ``(TEMPLATE,)``: the checkpoint's template.
    conditions: tuple[Condition, ...] = default("conditions")
    #: The over-refusal gate's benign prompts: ``shipped`` or ``xstest:FILE``.
    overrefusal: str = default("overrefusal")
    #: Prefill depths of test_prefill_depth (none: no such test), where the prefixes come
    #: from (a JSONL file or a model's greedy answers) and what of an answer the judge reads.
    prefill_depths: tuple[int, ...] = default("prefill_depths")
    prefix_file: Path | None = None
    prefix_model: ModelSpec | None = None
    prefill_judge: str = default("prefill_judge")
    #: The pyproject.toml the table was read from; None when no table was found (defaults).
    source: Path | None = None

    def thresholds_for(self, category: str) -> Thresholds:
        """The category's own limits where it sets them, else the global ones."""
        return self.category_thresholds.get(category, self.thresholds)

    def decoding(self) -> Decoding:
        """How every model of the run answers (the gate and ``evaluate`` alike)."""
        return Decoding(
            self.max_new_tokens,
            self.batch_size,
            self.dtype,
            max_prompt_tokens=self.max_prompt_tokens,
        )

    @property
    def judges(self) -> tuple[str, ...]:
        """The judge specs, one or several."""
        return (self.judge,) if isinstance(self.judge, str) else self.judge

    def judge_named(self) -> str:
        """The judges as messages and headers name them: specs without keys (``, ``), and how
        several combine."""
        named = ", ".join(redact(spec) for spec in self.judges)
        return named if isinstance(self.judge, str) else f"{named} ({self.judge_combine})"

    def judge_settings(self, cache_dir: Path, model: Callable[[str], Target]) -> JudgeSettings:
        """What the judge is built with; ``model`` loads an ``hf:`` judge's model (see
        ``catalog.judge_model``)."""
        return JudgeSettings(
            transport=self.transport,
            cache_dir=cache_dir,
            model=model,
            prompt_path=self.judge_prompt,
            max_tokens=self.judge_max_tokens,
            threshold=self.judge_threshold,
        )


def _with(config: SafetyConfig, values: Mapping[str, Any]) -> SafetyConfig:
    """``config`` with checked values by setting name: transport settings go into the
    transport, limits into the global and every category's thresholds."""
    transport = {_TRANSPORT[k]: v for k, v in values.items() if k in _TRANSPORT}
    limits = {k: v for k, v in values.items() if k in _LIMITS}
    changes = {k: v for k, v in values.items() if k not in _TRANSPORT and k not in _LIMITS}
    if transport:
        changes["transport"] = replace(config.transport, **transport)
    if limits:
        changes["thresholds"] = replace(config.thresholds, **limits)
        changes["category_thresholds"] = {
            c: replace(t, **limits) for c, t in config.category_thresholds.items()
        }
    return _embedded_defaults(replace(config, **changes))


def _embedded_defaults(config: SafetyConfig) -> SafetyConfig:
    """With smol as the base and the toy's three fine-tunes as the checkpoints (the default, or
    a table that lists them under their names, e.g. with a template), smol's fine-tunes are the
    checkpoints: the toy's are not fine-tunes of it. Other checkpoints are the user's choice."""
    specs = config.checkpoints
    toys = set(specs) == set(TOY_FINE_TUNES) and all(
        isinstance(spec, ModelSpec) and spec.model == alias and spec.adapter is None
        for alias, spec in specs.items()
    )
    if config.base.model == SMOL_BASE and toys:
        return replace(config, checkpoints={name: ModelSpec(name) for name in SMOL_FINE_TUNES})
    return config


def _thresholds(table: Mapping[str, Any], where: str, start: Thresholds) -> Thresholds:
    limits: dict[str, Any] = {
        k: SETTING[k].check(v, f"{where}.{k}", Path()) for k, v in table.items() if k in _LIMITS
    }
    return replace(start, **limits)


def _all_thresholds(table: object, where: str) -> tuple[Thresholds, dict[str, Thresholds]]:
    check(isinstance(table, dict), where, "expected a table")
    assert isinstance(table, dict)
    overall = _thresholds(table, where, Thresholds())
    per_category: dict[str, Thresholds] = {}
    for key, value in table.items():
        if key in _LIMITS:
            continue
        check(key in CATEGORIES, f"{where}.{key}", f"not a limit {_LIMITS} nor a category")
        check(isinstance(value, dict), f"{where}.{key}", "expected a table of limits")
        run_wide = set(value) & set(_RUN_LIMITS)
        check(not run_wide, f"{where}.{key}", f"{sorted(run_wide)}: run-wide, set in [{where}]")
        unknown = set(value) - set(_LIMITS)
        check(not unknown, f"{where}.{key}", f"unknown limit(s) {sorted(unknown)}")
        per_category[key] = _thresholds(value, f"{where}.{key}", overall)
    return overall, per_category


def from_table(
    table: Mapping[str, Any], rootdir: Path, only: Collection[str] | None = None
) -> SafetyConfig:
    """Validate a ``[tool.finetune_safety]`` table; relative paths are relative to rootdir.

    Unknown keys are always errors; ``only`` restricts the values checked and used to those
    settings (``evaluate`` reads what one evaluation needs, not the checkpoints)."""
    known = table_keys()
    unknown = set(table) - set(known)
    check(not unknown, TABLE, f"unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    wanted = [
        s
        for s in SETTINGS
        if s.table and not s.section and s.name in table and (only is None or s.name in only)
    ]
    config = _with(SafetyConfig(), {s.name: s.from_table(table[s.name], rootdir) for s in wanted})
    if THRESHOLDS in table and (only is None or THRESHOLDS in only):
        overall, per_category = _all_thresholds(table[THRESHOLDS], f"{TABLE}.{THRESHOLDS}")
        config = replace(config, thresholds=overall, category_thresholds=per_category)
    return config


def read_table(pyproject: Path) -> dict[str, Any] | None:
    """The ``[tool.finetune_safety]`` table of a pyproject.toml, if it has one."""
    if not pyproject.is_file():
        return None
    try:
        raw = pyproject.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{pyproject}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; another encoding is a typo's cousin
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{pyproject}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); TOML files are "
            "UTF-8: save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("finetune_safety") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigError(
            f"{pyproject}: [{TABLE}] must be a table ([tool.finetune_safety] with keys under "
            f"it), not {type(table).__name__} {table!r}"
        )
    near = [name for name in tool if _near_miss(name)] if isinstance(tool, dict) else []
    for name in near:
        warnings.warn(
            f"{pyproject}: [tool.{name}] is not read; the table is [{TABLE}] (underscore)",
            ConfigWarning,
            stacklevel=2,
        )
    return table


def _near_miss(name: str) -> bool:
    """``finetune-safety``, ``FineTune_Safety``, ``finetune.safety``: not the table's name."""
    squashed = "".join(c for c in name.lower() if c.isalnum())
    return name != "finetune_safety" and squashed == "finetunesafety"


#: The settings a command line may override in the configuration.
OVERRIDABLE = frozenset(s.name for s in SETTINGS if s.option is not None and s.config)


@dataclass(frozen=True, init=False)
class Overrides:
    """Command-line values by setting name: ``--safety-*`` options, or with ``flags`` the
    ``evaluate`` flags, which name themselves in errors. None, False or empty: not given."""

    values: Mapping[str, Any]
    flags: bool

    def __init__(self, *, flags: bool = False, **values: Any) -> None:
        unknown = set(values) - OVERRIDABLE
        if unknown:
            raise TypeError(f"not settings a command line overrides: {sorted(unknown)}")
        given = {k: v for k, v in values.items() if not (v is None or v is False or v in ([], ()))}
        object.__setattr__(self, "values", given)
        object.__setattr__(self, "flags", flags)

    def where(self, setting: Setting) -> str:
        return setting.flag_name if self.flags else setting.option_name

    def origin(self, name: str) -> str:
        """What gave a setting its value, for a message: the option or flag when given, else
        the table key (whose default it may be)."""
        setting = SETTING[name]
        return self.where(setting) if name in self.values else setting.key


def apply_overrides(config: SafetyConfig, options: Overrides, base: Path) -> SafetyConfig:
    """Command-line values win over the table; ``--safety-checkpoint`` replaces the list, a
    limit applies to every category. Relative paths start from ``base`` (pytest: the rootdir)."""
    checked = {
        name: SETTING[name].from_command_line(value, options.where(SETTING[name]), base)
        for name, value in options.values.items()
    }
    return _with(config, checked)


def load_config(
    rootdir: Path,
    options: Overrides,
    only: Collection[str] | None = None,
    base: Path | None = None,
) -> SafetyConfig:
    """The rootdir's ``pyproject.toml`` table (or the defaults), then the command-line options,
    whose relative paths start from ``base`` (default: the rootdir); ``only`` as ``from_table``."""
    pyproject = rootdir / "pyproject.toml"
    table = read_table(pyproject)
    config = from_table(table, rootdir, only) if table is not None else SafetyConfig()
    if table is not None:
        config = replace(config, source=pyproject)
    return _check_prefill(apply_overrides(config, options, base or rootdir))


def _check_prefill(config: SafetyConfig) -> SafetyConfig:
    """Prefill depths need one source of prefixes: a file or a model, not both."""
    sources = [n for n in ("prefix_file", "prefix_model") if getattr(config, n) is not None]
    if config.prefill_depths and len(sources) != 1:
        given = f"both are set ({' and '.join(sources)})" if sources else "neither is set"
        raise ConfigError(
            f"{SETTING['prefill_depths'].key}: the prefixes come from prefix_file or "
            f"prefix_model, exactly one of them; {given}"
        )
    return config
