"""Specific errors; each message names the file, line or option at fault."""

from __future__ import annotations

from pathlib import Path


class FinetuneSafetyError(Exception):
    """Base class for every error this package raises on purpose."""


class LocatedError(FinetuneSafetyError):
    """An error at a place a user can go to: the message starts with ``OPTION PATH:LINE: ``,
    each part where known, so every such error names its place the same way."""

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        line: int | None = None,
        *,
        option: str | None = None,
    ) -> None:
        place = None if path is None else f"{path}:{line}" if line is not None else str(path)
        where = " ".join(part for part in (option, place) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.path = path
        self.line = line
        self.option = option


class ConfigWarning(UserWarning):
    """A configuration that is probably not what was meant, e.g. a near-miss table name."""


class BenchmarkError(LocatedError):
    """A benchmark file or spec is unusable; names the file and, where known, the line."""


class ModelLoadError(LocatedError):
    """A model or adapter cannot be loaded as asked (missing files, unsafe format, bad spec)."""


class StoreError(LocatedError):
    """The result store is unusable (corrupt file, wrong schema)."""


class JudgeError(LocatedError):
    """A judge spec is unknown or a judge cannot be constructed."""


class LabelsError(LocatedError):
    """A labelled set (``judge-check --labels``, ``judge_labels``) is unusable; names the file
    and line."""


class PrefixError(LocatedError):
    """A prefix file (``prefix_file``, ``depth --prefix-file``) is unusable; names the file and
    line."""


class FinetuneDataError(LocatedError):
    """A fine-tuning data file is unusable; names the file and line."""


class UnavailableError(FinetuneSafetyError):
    """A checkpoint, the base model or the judge cannot be used this run (a server that does not
    answer, a model that resolves to nothing or cannot load): found once, then every test that
    needs it fails with this one line, which names the alias or the judge and its option."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"{subject}: {one_line(reason)}")
        self.subject = subject
        self.reason = one_line(reason)


def one_line(text: str, limit: int = 400) -> str:
    """``text`` (often a third-party error's message) on one line and at most ``limit``
    characters: a failing test or the CLI shows one line, never a wall of text."""
    joined = " ".join(text.split())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."
