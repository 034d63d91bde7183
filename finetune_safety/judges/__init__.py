"""Judges turn (prompt, response) pairs into verdicts; ``make_judge`` builds one from a spec.

Import-light on purpose: judges that need heavy clients (openai, torch) import them inside
their constructors, so ``pytest --help`` and xdist workers never pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from finetune_safety.endpoint import Transport, parse
from finetune_safety.errors import JudgeError
from finetune_safety.registry import Registry, scheme_of
from finetune_safety.store import resolve_cache_dir
from finetune_safety.values import Prompt, Verdict

__all__ = [
    "JUDGES",
    "KNOWN_JUDGES",
    "Judge",
    "JudgeFactory",
    "JudgeSettings",
    "make_judge",
    "register_judge",
]


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


@dataclass(frozen=True)
class JudgeSettings:
    """How LLM judges are run: transport for ``openai:`` judges, cache for ``hf:`` judges."""

    transport: Transport = field(default_factory=Transport)
    reasks: int = 2
    cache_dir: Path | None = None


#: The spec forms of the built-in judges; registered schemes are listed beside them in errors.
KNOWN_JUDGES: tuple[str, ...] = ("refusal", "openai:MODEL[@URL]", "hf:PATH")

#: Builds a judge from its spec and the run's settings; cheap (no client, no model).
JudgeFactory = Callable[[str, JudgeSettings], Judge]

#: Judges by spec scheme; ``register_judge`` and the ``finetune_safety.judges`` entry points add.
JUDGES: Registry[JudgeFactory] = Registry("judge")


def register_judge(scheme: str, factory: JudgeFactory, *, replace: bool = False) -> None:
    """Make ``scheme:...`` specs (or the bare ``scheme``) build judges with ``factory``."""
    JUDGES.register(scheme, factory, replace=replace)


def make_judge(spec: str, settings: JudgeSettings | None = None) -> Judge:
    """Build the judge a spec names; cheap (no client, no model) until it first judges."""
    spec = spec.strip()
    factory = JUDGES.get(scheme_of(spec)) if spec else None
    if factory is None:
        raise _unknown(spec)
    return factory(spec, settings or JudgeSettings())


def _known() -> list[str]:
    builtin = {form.partition(":")[0] for form in KNOWN_JUDGES}
    return [*KNOWN_JUDGES, *(f"{s}:..." for s in JUDGES.schemes() if s not in builtin)]


def _unknown(spec: str) -> JudgeError:
    return JudgeError(f"unknown judge {spec!r}; known judges: {', '.join(_known())}")


def _refusal(spec: str, settings: JudgeSettings) -> Judge:
    from finetune_safety.judges.refusal import RefusalJudge

    if spec != "refusal":
        raise _unknown(spec)
    return RefusalJudge()


def _openai(spec: str, settings: JudgeSettings) -> Judge:
    from finetune_safety.judges.rubric import OpenAIRubricJudge

    return OpenAIRubricJudge(parse(spec, settings.transport), settings.reasks)


def _hf(spec: str, settings: JudgeSettings) -> Judge:
    from finetune_safety.judges.rubric import HFRubricJudge

    if not spec[3:]:
        raise _unknown(spec)
    cache_dir = settings.cache_dir or resolve_cache_dir(None, Path.cwd())
    return HFRubricJudge(spec[3:], cache_dir)


register_judge("refusal", _refusal)
register_judge("openai", _openai)
register_judge("hf", _hf)
