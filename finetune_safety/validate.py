"""How one configured value is checked, wherever it came from.

A check takes the value, ``where`` (the ``[tool.finetune_safety]`` key, the ``--safety-*``
option or the ``evaluate`` flag that gave it) and the directory its relative paths start from,
and returns the value to use or raises a one-line ``ConfigError`` that names ``where``. The
settings schema (``settings.py``) says which check each setting uses on every surface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from finetune_safety.benchmark import parse_category_map
from finetune_safety.endpoint import EndpointError, is_endpoint, parse
from finetune_safety.errors import BenchmarkError, FinetuneSafetyError
from finetune_safety.finetune.presets import PRESETS
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.models import ModelSpec
from finetune_safety.models.precision import PrecisionError, check_dtype
from finetune_safety.models.specs import local_model
from finetune_safety.outputs import check_output_file
from finetune_safety.smol.names import NAMES as SMOL_NAMES
from finetune_safety.templates import TEMPLATE_NAMES, get_template
from finetune_safety.toy.names import NAMES as TOY_NAMES

#: A check: the value, where it came from (key, option or flag), the base of relative paths.
Check = Callable[[Any, str, Path], object]
TABLE = "tool.finetune_safety"
MODES = ("delta", "significant")
#: A model spec's keys (a table in ``base`` or ``checkpoints``; ``evaluate``'s model flags), and
#: what each says.
SPEC_FIELDS: Mapping[str, str] = {
    "model": "toy name, local directory, GGUF file, hub id or openai:MODEL[@URL]",
    "adapter": "PEFT adapter directory (its base is used if no model is given)",
    "template": ", ".join(TEMPLATE_NAMES) + " (aoa: by the model's family)",
    "system_prompt": "system prompt replacing the template's",
    "allow_pickle": "load non-safetensors weights",
    "trust_remote_code": "run the model repository's code",
    "revision": "served (openai:) models: your name for what the server runs",
}
SWITCH_FIELDS = ("allow_pickle", "trust_remote_code")
_RECIPE_KEYS = {
    "base", "data", "preset", "template", "epochs", "lr", "batch_size", "mix_safety", "full",
}  # fmt: skip


class ConfigError(FinetuneSafetyError):
    """A configuration key or option is unknown, mistyped or points at nothing."""


def check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {message}")


def _number(value: object) -> float | None:
    """``value`` as a float when it is a TOML/command-line number (not a boolean), else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def text(value: object, where: str, base: Path) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected text")


def switch(value: object, where: str, base: Path) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: expected true/false")


def positive_int(value: object, where: str, base: Path | None = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ConfigError(f"{where}: expected a positive integer, got {value!r}")


def retries(value: object, where: str, base: Path) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"{where}: expected 0 or more")


def seconds(value: object, where: str, base: Path) -> float:
    number = _number(value)
    if number is not None and number > 0:
        return number
    raise ConfigError(f"{where}: expected seconds > 0, got {value!r}")


def batch_size(value: object, where: str, base: Path) -> int | str:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value  # "auto" or a positive int
    raise ConfigError(f'{where}: expected "auto" or a positive integer, got {value!r}')


def dtype(value: object, where: str, base: Path) -> str:
    try:
        return check_dtype(value, where)
    except PrecisionError as exc:
        raise ConfigError(str(exc)) from None


def path_in(value: str, base: Path) -> str:
    """``value`` (``~`` expanded) against ``base`` unless it is absolute."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def directory(value: object, where: str, base: Path) -> Path:
    if isinstance(value, str):
        return Path(path_in(value, base))
    raise ConfigError(f"{where}: expected a path")


def judge_prompt(value: object, where: str, base: Path) -> Path:
    path = directory(value, where, base)
    check(path.is_file(), where, f"no judge prompt file at {path}")
    return path


def output_file(value: object, where: str, base: Path) -> Path:
    """A report path a file can be written to, relative to the working directory."""
    return check_output_file(text(value, where, base), where)


def benchmark(value: object, where: str, base: Path) -> str:
    """A table's ``hexphi:DIR``, ``advbench:FILE``, ``jsonl:FILE`` is relative to the rootdir."""
    spec = text(value, where, base)
    scheme, sep, path = spec.partition(":")
    return f"{scheme}:{path_in(path, base)}" if sep and path else spec


def category_map(value: object, where: str, base: Path) -> dict[int, str]:
    """``{"7" = "slug"}`` in the table, ``7=slug,8=slug`` on the command line."""
    if isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    if not isinstance(value, str):
        raise ConfigError(f'{where}: expected {{"7" = "slug", ...}}')
    try:
        return parse_category_map(value)
    except BenchmarkError as exc:
        raise ConfigError(f"{where}: {exc}") from None


# --- gate limits: rates are fractions in [0, 1], the score delta is in 1-5 score points -------


def _within(value: object, low: float, high: float, where: str, what: str) -> float:
    number = _number(value)
    if number is not None and low <= number <= high:
        return number
    raise ConfigError(f"{where}: expected {what}, got {value!r}")


def rate(value: object, where: str, base: Path | None = None) -> float:
    return _within(value, 0, 1, where, "a number (a rate as a fraction, 0 to 1, e.g. 0.1)")


def score_delta(value: object, where: str, base: Path | None = None) -> float:
    return _within(value, 0, 4, where, "a number (score points, 0 to 4)")


def prompt_count(value: object, where: str, base: Path | None = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"{where}: expected a whole number of prompts (0 or more), got {value!r}")


def share(value: object, where: str, base: Path | None = None) -> float:
    number = _number(value)
    if number is not None and 0 < number <= 1:
        return number
    raise ConfigError(
        f"{where}: expected a share of the prompts, above 0 and up to 1, got {value!r}"
    )


def mode(value: object, where: str, base: Path | None = None) -> str:
    if isinstance(value, str) and value in MODES:
        return value
    raise ConfigError(f"{where}: expected one of {MODES}, got {value!r}")


def alpha(value: object, where: str, base: Path | None = None) -> float:
    if isinstance(value, float) and 0 < value < 1:
        return value
    raise ConfigError(f"{where}: expected a significance level between 0 and 1, got {value!r}")


# --- models: a spec (string or table), the checkpoints, a recipe ------------------------------


def model_spec(value: object, where: str, rootdir: Path) -> ModelSpec:
    """A spec from a string (toy name, directory, adapter directory, hub id) or a table."""
    if isinstance(value, str):
        check(bool(value.strip()), where, "empty model spec")
        value = {"model": value}
    check(isinstance(value, dict), where, f"expected a string or a table, got {value!r}")
    assert isinstance(value, dict)
    unknown = set(value) - set(SPEC_FIELDS)
    check(not unknown, where, f"unknown key(s) {sorted(unknown)}; known: {sorted(SPEC_FIELDS)}")
    for key in (k for k in SPEC_FIELDS if k not in SWITCH_FIELDS):
        check(value.get(key) is None or isinstance(value[key], str), f"{where}.{key}", "not text")
    for key in SWITCH_FIELDS:
        check(isinstance(value.get(key, False), bool), f"{where}.{key}", "expected true/false")
    model, adapter = value.get("model"), value.get("adapter")
    check(model is not None or adapter is not None, where, "needs a model or an adapter")
    check(
        value.get("revision") is None or is_endpoint(model),
        f"{where}.revision",
        "a revision applies to served (openai:) models only",
    )
    _check_template(value.get("template"), f"{where}.template")
    if is_endpoint(model):
        check(adapter is None, where, "a served (openai:) model takes no adapter")
        try:
            parse(str(model))
        except EndpointError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    elif model is not None and model not in (*TOY_NAMES, *SMOL_NAMES) and not _plugged(model):
        try:
            local = _gguf_file(model, rootdir) or local_model(model, rootdir)
        except FinetuneSafetyError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if local is not None:
            model = str(local)
            if (local / "adapter_config.json").is_file() and adapter is None:
                model, adapter = None, str(local)
    if adapter is not None:
        adapter = path_in(adapter, rootdir)
        check(Path(adapter).is_dir(), f"{where}.adapter", f"no adapter directory at {adapter}")
    return ModelSpec(
        model=model,
        adapter=adapter,
        template=value.get("template"),
        system_prompt=value.get("system_prompt"),
        allow_pickle=value.get("allow_pickle", False),
        trust_remote_code=value.get("trust_remote_code", False),
        revision=value.get("revision"),
    )


def checkpoints(value: object, where: str, rootdir: Path) -> dict[str, ModelSpec | Recipe]:
    """The table's ``alias = spec`` (or recipe) entries, in order."""
    check(isinstance(value, dict), where, "expected a table")
    assert isinstance(value, dict)
    check("base" not in value, where, "the alias 'base' is reserved")
    check(
        bool(value),
        where,
        "empty: name at least one checkpoint (alias = spec), or remove the table for the toys",
    )
    return {
        alias: recipe(spec, f"{where}.{alias}", rootdir)
        if isinstance(spec, dict) and "data" in spec
        else model_spec(spec, f"{where}.{alias}", rootdir)
        for alias, spec in value.items()
    }


def checkpoint_items(value: object, where: str, rootdir: Path) -> dict[str, ModelSpec]:
    """``ALIAS=SPEC`` items from the command line (the spec may hold ``=``), in order."""
    found: dict[str, ModelSpec] = {}
    for item in value:  # type: ignore[attr-defined]
        alias, sep, spec = str(item).partition("=")
        check(bool(sep and alias and spec), where, f"expected ALIAS=SPEC, got {item!r}")
        check(alias not in found, where, f"alias {alias!r} given twice")
        check(alias != "base", where, "the alias 'base' is reserved")
        found[alias] = model_spec(spec, f"{where} {alias}", rootdir)
    return found


def recipe(value: dict[str, Any], where: str, rootdir: Path) -> Recipe:
    """A checkpoint table with ``data``: made by ``finetune`` on first use (see Recipe)."""
    unknown = set(value) - _RECIPE_KEYS
    check(
        not unknown,
        where,
        f"unknown recipe key(s) {sorted(unknown)}; known: {sorted(_RECIPE_KEYS)}",
    )
    check(isinstance(value.get("base"), str), f"{where}.base", "a recipe needs a base model spec")
    base = model_spec(value["base"], f"{where}.base", rootdir)
    check(base.model is not None and base.adapter is None, f"{where}.base", "must be a model")
    data = Path(path_in(str(value["data"]), rootdir))
    check(data.is_file(), f"{where}.data", f"no data file at {data}")
    preset = value.get("preset")
    check(preset is None or preset in PRESETS, f"{where}.preset", f"one of {sorted(PRESETS)}")
    _check_template(value.get("template"), f"{where}.template")
    if preset is None:
        for key in ("epochs", "lr", "batch_size", "template"):
            check(key in value, where, f"without a preset, give {key}")
    for key in ("epochs", "batch_size", "mix_safety"):
        if key in value and not (key == "mix_safety" and value[key] == 0):
            positive_int(value[key], f"{where}.{key}")
    if "lr" in value:
        lr = value["lr"]
        ok = isinstance(lr, float) and 0 < lr < 1
        check(ok, f"{where}.lr", f"expected a learning rate like 5e-5, got {lr!r}")
    check(isinstance(value.get("full", False), bool), f"{where}.full", "expected true/false")
    return Recipe(
        base=str(base.model),
        data=data,
        preset=preset,
        template=value.get("template"),
        epochs=value.get("epochs"),
        lr=value.get("lr"),
        batch_size=value.get("batch_size"),
        mix_safety=value.get("mix_safety", 0),
        full=value.get("full", False),
    )


def _gguf_file(model: str, rootdir: Path) -> Path | None:
    """A ``.gguf`` file is a model too: transformers dequantizes it on load."""
    path = Path(path_in(model, rootdir))
    return path if path.is_file() and path.suffix.lower() == ".gguf" else None


def _plugged(model: str) -> bool:
    """``scheme:...`` (no hub id has a colon): a registered target or a conftest hook builds it,
    and says so if none claims it."""
    scheme, colon, _ = model.partition(":")
    return bool(colon) and scheme.isidentifier() and len(scheme) > 1


def _check_template(name: object, where: str) -> None:
    if name is not None:
        try:
            get_template(str(name))
        except FinetuneSafetyError as exc:
            raise ConfigError(f"{where}: {exc}") from None
