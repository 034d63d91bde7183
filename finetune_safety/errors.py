"""Specific errors; each message names the file, line or option at fault."""

from __future__ import annotations

from pathlib import Path


class FinetuneSafetyError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigWarning(UserWarning):
    """A configuration that is probably not what was meant, e.g. a near-miss table name."""


class BenchmarkError(FinetuneSafetyError):
    """A benchmark file or spec is unusable; names the file and, where known, the line."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ModelLoadError(FinetuneSafetyError):
    """A model or adapter cannot be loaded as asked (missing files, unsafe format, bad spec)."""


class StoreError(FinetuneSafetyError):
    """The result store is unusable (corrupt file, wrong schema)."""


class JudgeError(FinetuneSafetyError):
    """A judge spec is unknown or a judge cannot be constructed."""


class FinetuneDataError(FinetuneSafetyError):
    """A fine-tuning data file is unusable; names the file and line."""

    def __init__(self, message: str, path: Path | str, line: int | None = None):
        where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line
