"""Judges turn (prompt, response) pairs into verdicts; ``make_judge`` builds one from a spec.

Import-light on purpose: judges that need heavy clients (openai, torch) import them inside
their constructors, so ``pytest --help`` and xdist workers never pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from finetune_safety._util.registry import Registry, scheme_of
from finetune_safety.errors import JudgeError
from finetune_safety.models.endpoint import Transport, parse, redact
from finetune_safety.values import Prompt, Verdict

if TYPE_CHECKING:
    from finetune_safety.judges.rubric import JudgePrompt
    from finetune_safety.models import Target

__all__ = [
    "JUDGES",
    "KNOWN_JUDGES",
    "Judge",
    "JudgeFactory",
    "JudgeSettings",
    "Probed",
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


@runtime_checkable
class Probed(Protocol):
    """A judge behind a server: ``probe()`` asks once, cheaply, whether it answers, and raises a
    ``FinetuneSafetyError`` saying why not, so a run finds a dead judge before generating."""

    def probe(self) -> None: ...


@dataclass(frozen=True)
class JudgeSettings:
    """How LLM judges are run: transport for ``openai:`` judges, a model for ``hf:`` judges."""

    transport: Transport = field(default_factory=Transport)
    reasks: int = 2
    #: The run's cache directory, for judges that keep files; the caller gives it.
    cache_dir: Path | None = None
    #: Builds an ``hf:PATH`` judge's model from PATH: ``catalog.judge_model(cache_dir)``, given
    #: by the layers above the catalog (judges sit below the toy and the catalog).
    model: Callable[[str], Target] | None = None
    #: A judge prompt file the user brings (e.g. the paper's); None: the built-in rubric.
    prompt_path: Path | None = None
    #: Reply budget; None: 256 with the built-in rubric, 1024 with a brought prompt.
    max_tokens: int | None = None
    #: P(unsafe) from which a classifier judge's answer is unsafe, when it has the probability.
    threshold: float = 0.5


#: The spec forms of the built-in judges; registered schemes are listed beside them in errors.
KNOWN_JUDGES: tuple[str, ...] = (
    "refusal",
    "refusal-paper",
    "openai:MODEL[@URL]",
    "hf:PATH",
    "llama-guard:MODEL@URL|PATH",
    "harmbench:MODEL@URL|PATH",
    "wildguard:MODEL@URL|PATH",
)

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
    """``refusal`` (whole words, any case) or ``refusal-paper`` (the reference's exact rule)."""
    from finetune_safety.judges.refusal import PaperRefusalJudge, RefusalJudge

    if spec not in ("refusal", "refusal-paper"):
        raise _unknown(spec)
    _rubric_only(spec, settings)
    return RefusalJudge() if spec == "refusal" else PaperRefusalJudge()


def _rubric_only(spec: str, settings: JudgeSettings) -> None:
    """A judge prompt the user brings is for rubric judges; others have their own rules."""
    if settings.prompt_path is not None:
        raise JudgeError(
            f"a judge prompt ({settings.prompt_path}) needs a rubric judge (openai:MODEL or "
            f"hf:PATH), not {redact(spec)!r}"
        )


def _classifier(spec: str, settings: JudgeSettings) -> Judge:
    """``llama-guard:``, ``harmbench:`` or ``wildguard:``, served (``MODEL@URL``) or local."""
    from finetune_safety.judges.classifier_specs import make_classifier_judge

    _rubric_only(spec, settings)
    return make_classifier_judge(spec, settings.transport, settings.threshold, settings.model)


def _prompt(settings: JudgeSettings) -> JudgePrompt | None:
    from finetune_safety.judges.rubric import JudgePrompt

    return JudgePrompt.from_file(settings.prompt_path) if settings.prompt_path else None


def _openai(spec: str, settings: JudgeSettings) -> Judge:
    from finetune_safety.judges.rubric import OpenAIRubricJudge

    endpoint = parse(spec, settings.transport)
    return OpenAIRubricJudge(endpoint, settings.reasks, _prompt(settings), settings.max_tokens)


def _hf(spec: str, settings: JudgeSettings) -> Judge:
    from finetune_safety.judges.rubric import HFRubricJudge

    if not spec[3:]:
        raise _unknown(spec)
    if settings.model is None:
        raise JudgeError(
            f"judge {spec!r}: JudgeSettings.model is not set; give catalog.judge_model(cache_dir)"
        )
    return HFRubricJudge(spec[3:], settings.model, _prompt(settings), settings.max_tokens)


register_judge("refusal", _refusal)
register_judge("refusal-paper", _refusal)
register_judge("openai", _openai)
register_judge("hf", _hf)
register_judge("llama-guard", _classifier)
register_judge("harmbench", _classifier)
register_judge("wildguard", _classifier)
