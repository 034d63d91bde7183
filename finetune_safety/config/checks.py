"""How one configured value is checked, wherever it came from.

A check takes the value, ``where`` (the ``[tool.finetune_safety]`` key, the ``--safety-*``
option or the ``evaluate`` flag that gave it) and the directory its relative paths start from,
and returns the value to use or raises a one-line ``ConfigError`` that names ``where``. The
settings schema (``config.schema``) says which check each setting uses on every surface.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from finetune_safety._util.outputs import check_output_file
from finetune_safety.benchmarks import parse_category_map
from finetune_safety.errors import BenchmarkError, FinetuneSafetyError
from finetune_safety.judges.combined import COMBINES
from finetune_safety.models.precision import PrecisionError, check_dtype

#: A check: the value, where it came from (key, option or flag), the base of relative paths.
Check = Callable[[Any, str, Path], object]
TABLE = "tool.finetune_safety"
MODES = ("delta", "significant")


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


def labels_file(value: object, where: str, base: Path) -> Path:
    path = directory(value, where, base)
    check(path.is_file(), where, f"no labelled-answers file at {path}")
    return path


def overrefusal(value: object, where: str, base: Path) -> str:
    """``shipped`` (the project's set) or ``xstest:FILE``, relative to the rootdir."""
    spec = text(value, where, base)
    if spec == "shipped":
        return spec
    scheme, sep, path = spec.partition(":")
    check(
        scheme == "xstest" and bool(sep and path),
        where,
        f"expected shipped or xstest:FILE, got {spec!r}",
    )
    found = path_in(path, base)
    check(Path(found).is_file(), where, f"no XSTest file at {found}")
    return f"xstest:{found}"


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


def prefix_file(value: object, where: str, base: Path) -> Path:
    path = directory(value, where, base)
    check(path.is_file(), where, f"no prefix file at {path}")
    return path


#: What the judge of a prefilled answer reads: the prefix and the continuation, or the latter.
PREFILL_JUDGES = ("whole", "continuation")


def prefill_judge(value: object, where: str, base: Path | None = None) -> str:
    check(value in PREFILL_JUDGES, where, f"expected one of {PREFILL_JUDGES}, got {value!r}")
    return str(value)


def depth_list(text: str) -> list[object]:
    """``5,10,20`` on a command line: whole numbers stay text where they are not, for the check
    to name."""
    return [int(p) if p.strip().isdigit() else p.strip() for p in text.split(",")]


def depths(value: object, where: str, base: Path | None = None) -> tuple[int, ...]:
    """Prefill depths: distinct whole numbers >= 0, in increasing order."""
    check(isinstance(value, list) and bool(value), where, f"expected [5, 10, ...], got {value!r}")
    assert isinstance(value, list)
    for k in value:
        ok = isinstance(k, int) and not isinstance(k, bool) and k >= 0
        check(ok, where, f"a depth is a whole number of tokens >= 0, got {k!r}")
    check(len(set(value)) == len(value), where, f"a depth is repeated in {value!r}")
    return tuple(sorted(value))


# --- gate limits: rates are fractions in [0, 1], the score delta is in 1-5 score points -------


def _within(value: object, low: float, high: float, where: str, what: str) -> float:
    number = _number(value)
    if number is not None and low <= number <= high:
        return number
    raise ConfigError(f"{where}: expected {what}, got {value!r}")


def rate(value: object, where: str, base: Path | None = None) -> float:
    return _within(value, 0, 1, where, "a number (a rate as a fraction, 0 to 1, e.g. 0.1)")


def kappa(value: object, where: str, base: Path | None = None) -> float:
    return _within(value, -1, 1, where, "a number (Cohen's kappa, -1 to 1)")


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


def probability(value: object, where: str, base: Path | None = None) -> float:
    number = _number(value)
    if number is not None and 0 < number < 1:
        return number
    raise ConfigError(f"{where}: expected a probability between 0 and 1, got {value!r}")


def _one_of(value: object, where: str, options: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in options:
        return value
    raise ConfigError(f"{where}: expected one of {options}, got {value!r}")


def judge_combine(value: object, where: str, base: Path | None = None) -> str:
    return _one_of(value, where, COMBINES)


def mode(value: object, where: str, base: Path | None = None) -> str:
    return _one_of(value, where, MODES)


def alpha(value: object, where: str, base: Path | None = None) -> float:
    if isinstance(value, float) and 0 < value < 1:
        return value
    raise ConfigError(f"{where}: expected a significance level between 0 and 1, got {value!r}")
