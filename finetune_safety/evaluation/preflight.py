"""What a run will ask of servers and of the judge, asked once, before anything is generated.

Served models (their ``GET /models``, which their fingerprint needs anyway) and a served judge
(``Probed.probe``) are asked all at once: servers that do not answer cost one client's retries
and timeouts together, not one after another, and never one per test. Then the judge gives its
id, for which an ``hf:`` judge resolves its model (a hub id that resolves to nothing fails here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

from finetune_safety.errors import FinetuneSafetyError, UnavailableError
from finetune_safety.judges import Judge, Probed
from finetune_safety.models import Target, redact
from finetune_safety.models.endpoint import run_concurrently

Check = Callable[[], object]


def preflight(
    served: Mapping[str, Callable[[], Target]], judge: Judge, judge_named: str
) -> dict[str, str]:
    """Each failure's message, by subject: ``served`` maps a model's subject (``checkpoint
    'x'``) to its target, ``judge_named`` is the judge's (``judge_subject``)."""
    checks: dict[str, Check] = {
        subject: partial(_fingerprint, target) for subject, target in served.items()
    }
    if isinstance(judge, Probed):
        checks[judge_named] = judge.probe
    failed = _concurrently(checks)
    if judge_named not in failed:
        try:
            judge.judge_id  # noqa: B018 - an hf: judge resolves and fingerprints its model
        except FinetuneSafetyError as exc:
            failed[judge_named] = str(exc)
    return failed


def require(served: Mapping[str, Callable[[], Target]], judge: Judge, judge_named: str) -> None:
    """``preflight`` for a command: the first failure stops it with its one line (exit 2)."""
    failed = preflight(served, judge, judge_named)
    if failed:
        raise UnavailableError(*next(iter(failed.items())))


def _fingerprint(target: Callable[[], Target]) -> str:
    return target().fingerprint


def _concurrently(checks: Mapping[str, Check]) -> dict[str, str]:
    """Run the checks at once; the message of each that raised a package error, by key."""
    items = list(checks.items())
    if not items:
        return {}

    def one(item: tuple[str, Check]) -> str | None:
        try:
            item[1]()
        except FinetuneSafetyError as exc:
            return str(exc)
        return None

    failed: dict[str, str] = {}
    for batch in run_concurrently(items, one, len(items)):
        failed.update((items[i][0], why) for i, why in batch if why is not None)
    return failed


def judge_subject(specs: str | Sequence[str], origin: str) -> str:
    """How a message names the judge (or judges): the specs and the key or option that gave
    them."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    named = ", ".join(redact(spec) for spec in specs)
    return f"{'judge' if len(specs) == 1 else 'judges'} {named} ({origin})"
