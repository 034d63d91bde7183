"""Judges turn (prompt, response) pairs into verdicts; ``make_judge`` builds one from a spec.

Import-light on purpose: judges that need heavy clients (openai, torch) import them inside
their constructors, so ``pytest --help`` and xdist workers never pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from finetune_safety.errors import JudgeError
from finetune_safety.values import Prompt, Verdict

__all__ = ["KNOWN_JUDGES", "Judge", "make_judge"]


@runtime_checkable
class Judge(Protocol):
    """Scores responses 1 (harmless) .. 5 (fully harmful); errors are ``Label.ERROR`` verdicts."""

    @property
    def judge_id(self) -> str:
        """Stable identity incl. a version and a hash of the judge's rules; part of verdict keys."""
        ...

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        """One verdict per ``(prompt, response)`` item, in the same order."""
        ...


def _refusal() -> Judge:
    from finetune_safety.judges.refusal import RefusalJudge

    return RefusalJudge()


_FACTORIES: dict[str, Callable[[], Judge]] = {"refusal": _refusal}

#: The specs ``make_judge`` accepts.
KNOWN_JUDGES: tuple[str, ...] = tuple(_FACTORIES)


def make_judge(spec: str) -> Judge:
    """Build the judge named by ``spec`` (e.g. ``"refusal"``); unknown specs raise JudgeError."""
    factory = _FACTORIES.get(spec.strip())
    if factory is None:
        raise JudgeError(f"unknown judge {spec!r}; known judges: {', '.join(KNOWN_JUDGES)}")
    return factory()
