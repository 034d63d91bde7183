"""What cannot be used this run, found once: a checkpoint, the base model or the judge whose
server did not answer the preflight, or whose first use failed. Each later use raises the same
one line at once, so a broken model costs one attempt and one line per test, not one attempt
(retries, timeouts) and one traceback per test. The plugin fails each such test with its line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from finetune_safety.errors import FinetuneSafetyError, UnavailableError
from finetune_safety.judges import CombinedJudge, Judge
from finetune_safety.values import Prompt, Verdict


class Faults:
    """Each subject's (``checkpoint 'x'``, ``base model``, ``judge ...``) first failure."""

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}

    def record(self, subject: str, reason: str) -> None:
        self._reasons.setdefault(subject, reason)

    def check(self, subject: str) -> None:
        """Raise the subject's fault, if it has one."""
        if subject in self._reasons:
            raise UnavailableError(subject, self._reasons[subject])

    @contextmanager
    def guard(self, subject: str) -> Iterator[None]:
        """Raise the subject's fault at once if it has one; else run the block, and make a
        package error in it the subject's fault. Another subject's fault passes through."""
        self.check(subject)
        try:
            yield
        except UnavailableError:
            raise
        except FinetuneSafetyError as exc:
            self.record(subject, str(exc))
            raise UnavailableError(subject, str(exc)) from None


class GuardedJudge:
    """The run's judge, whose failures are its own faults, not those of the model whose
    answers it was judging."""

    def __init__(self, judge: Judge, faults: Faults, subject: str) -> None:
        self._judge = judge
        self._faults = faults
        self.subject = subject

    @property
    def judge_id(self) -> str:
        with self._faults.guard(self.subject):
            return self._judge.judge_id

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        with self._faults.guard(self.subject):
            return self._judge.judge(items)


def guarded(judge: Judge, faults: Faults, subject: str) -> Judge:
    """``GuardedJudge`` around the run's judge; a combined judge keeps its members apart (the
    pipeline stores each one's verdicts), each guarded."""
    if isinstance(judge, CombinedJudge):
        members = tuple(GuardedJudge(j, faults, subject) for j in judge.members)
        return CombinedJudge(members, judge.how)
    return GuardedJudge(judge, faults, subject)
