"""The embedded toy aligned chat model and its fine-tunes: the default when no model is given.

A lazy face: naming the toy (``BASE``, ``NAMES``) imports none of its builders; they load when
first used."""

from typing import TYPE_CHECKING, Any

from finetune_safety.config.names import TOY_BASE as BASE
from finetune_safety.config.names import TOY_NAMES as NAMES

if TYPE_CHECKING:
    from finetune_safety.catalog.toy.build import (
        RECIPES,
        ToyCheckpoint,
        ensure_toy,
        toy_checkpoint,
        toy_root,
    )

__all__ = ["BASE", "NAMES", "RECIPES", "ToyCheckpoint", "ensure_toy", "toy_checkpoint", "toy_root"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from finetune_safety.catalog.toy import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
