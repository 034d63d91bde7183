"""Scheme registries: how a spec's scheme (``openai`` in ``openai:MODEL``) picks its factory.

The built-in judges, targets and benchmarks register here exactly as users register theirs:
``register_judge("guard", factory)`` in code, or an entry point in an installed package's
metadata (groups ``finetune_safety.judges``, ``finetune_safety.targets`` and
``finetune_safety.benchmarks``, name = scheme, value = ``module:factory``). Entry points are read
only when a scheme is not registered in code, and only the matching one is imported, so a run
that uses the built-ins never imports a plugin package.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from finetune_safety.errors import FinetuneSafetyError

__all__ = ["ENTRY_POINT_GROUPS", "Registry", "RegistryError", "scheme_of"]

F = TypeVar("F", bound=Callable[..., object])

#: The entry-point group of each registry kind.
ENTRY_POINT_GROUPS = {
    "judge": "finetune_safety.judges",
    "target": "finetune_safety.targets",
    "benchmark": "finetune_safety.benchmarks",
}


class RegistryError(FinetuneSafetyError):
    """A scheme is registered twice or badly, or its entry point cannot be loaded."""


def scheme_of(spec: str) -> str:
    """``openai`` for ``openai:MODEL``; a spec without a colon is its own scheme (``refusal``)."""
    return spec.partition(":")[0]


class Registry(Generic[F]):
    """Factories by scheme for one kind (``judge``, ``target`` or ``benchmark``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.group = ENTRY_POINT_GROUPS[kind]
        self._factories: dict[str, F] = {}

    def register(self, scheme: str, factory: F, *, replace: bool = False) -> None:
        """Add ``factory`` for ``scheme``; a second factory for one scheme is a mistake unless
        ``replace`` says it is meant (e.g. a project swapping a built-in)."""
        if not scheme or ":" in scheme or scheme != scheme.strip():
            raise RegistryError(f"{self.kind} scheme {scheme!r}: expected a word, no ':'")
        if scheme in self._factories and not replace and self._factories[scheme] is not factory:
            raise RegistryError(
                f"{self.kind} scheme {scheme!r} is already registered; pass replace=True"
            )
        self._factories[scheme] = factory

    def unregister(self, scheme: str) -> None:
        """Remove a scheme (tests and projects that register for a while)."""
        self._factories.pop(scheme, None)

    def get(self, scheme: str) -> F | None:
        """The factory for ``scheme``: registered in code, else from an installed entry point."""
        if scheme not in self._factories:
            for point in entry_points(group=self.group, name=scheme):
                try:
                    self._factories[scheme] = point.load()
                except Exception as exc:  # any import error of a third-party plugin
                    raise RegistryError(
                        f"{self.kind} scheme {scheme!r}: entry point {point.value!r} "
                        f"(group {self.group}) failed to load: {exc}"
                    ) from None
                break
        return self._factories.get(scheme)

    def schemes(self) -> list[str]:
        """Every scheme known now: registered ones, then installed entry points, sorted."""
        installed = {point.name for point in entry_points(group=self.group)}
        return sorted(set(self._factories) | installed)
