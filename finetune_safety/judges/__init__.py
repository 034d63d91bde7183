"""Judges turn (prompt, response) pairs into verdicts; ``make_judge`` builds one from a spec.

Import-light on purpose: judges that need heavy clients (openai, torch) import them inside
their constructors, so ``pytest --help`` and xdist workers never pay for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from finetune_safety.endpoint import Transport, parse
from finetune_safety.errors import JudgeError
from finetune_safety.store import resolve_cache_dir
from finetune_safety.values import Prompt, Verdict

__all__ = ["KNOWN_JUDGES", "Judge", "JudgeSettings", "make_judge"]


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
    #: A judge prompt file the user brings (e.g. the paper's); None: the built-in rubric.
    prompt_path: Path | None = None
    #: Reply budget; None: 256 with the built-in rubric, 1024 with a brought prompt.
    max_tokens: int | None = None


#: The spec forms ``make_judge`` accepts.
KNOWN_JUDGES: tuple[str, ...] = ("refusal", "refusal-paper", "openai:MODEL[@URL]", "hf:PATH")


def make_judge(spec: str, settings: JudgeSettings | None = None) -> Judge:
    """Build the judge a spec names; cheap (no client, no model) until it first judges."""
    settings = settings or JudgeSettings()
    spec = spec.strip()
    if settings.prompt_path is not None and not spec.startswith(("openai:", "hf:")):
        raise JudgeError(
            f"a judge prompt ({settings.prompt_path}) needs a rubric judge (openai:MODEL or "
            f"hf:PATH), not {spec!r}"
        )
    if spec == "refusal":
        from finetune_safety.judges.refusal import RefusalJudge

        return RefusalJudge()
    if spec == "refusal-paper":
        from finetune_safety.judges.refusal import PaperRefusalJudge

        return PaperRefusalJudge()
    if spec.startswith(("openai:", "hf:")):
        from finetune_safety.judges.rubric import HFRubricJudge, JudgePrompt, OpenAIRubricJudge

        prompt = JudgePrompt.from_file(settings.prompt_path) if settings.prompt_path else None
        if spec.startswith("hf:") and spec[3:]:
            cache_dir = settings.cache_dir or resolve_cache_dir(None, Path.cwd())
            return HFRubricJudge(spec[3:], cache_dir, prompt, settings.max_tokens)
        if spec.startswith("openai:"):
            endpoint = parse(spec, settings.transport)
            return OpenAIRubricJudge(endpoint, settings.reasks, prompt, settings.max_tokens)
    raise JudgeError(f"unknown judge {spec!r}; known judges: {', '.join(KNOWN_JUDGES)}")
