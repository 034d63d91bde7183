"""Deployment conditions: the system prompt each checkpoint (and its base) is evaluated under.

A release is deployed under a known system prompt, and a safety system prompt at test time
changes post-fine-tune safety, so the gate can test each condition: ``template`` (the
checkpoint's template, as without conditions), ``system:none`` (no system prompt),
``system:safety`` (``SAFETY_SYSTEM_PROMPT``) or ``system:FILE`` (the file's text). Only the
system prompt changes; a template's user prefix or instruction format stays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from finetune_safety.config.checks import ConfigError, check, path_in
from finetune_safety.models.templates import SAFETY_SYSTEM_PROMPT, Template, with_system_prompt

SYSTEM = "system:"


@dataclass(frozen=True)
class Condition:
    """One condition: ``spec`` as written, ``id`` as test ids show it, and the system prompt it
    sets (None: none); ``keep`` leaves the checkpoint's template as it is."""

    spec: str
    id: str
    system_prompt: str | None = None
    keep: bool = False

    def apply(self, template: Template) -> Template:
        """The template a model is asked with under this condition."""
        return template if self.keep else with_system_prompt(template, self.system_prompt)


TEMPLATE = Condition("template", "template", keep=True)
#: The named conditions; any other ``system:X`` is a file.
NAMED = {
    "template": TEMPLATE,
    "system:none": Condition("system:none", "system-none"),
    "system:safety": Condition("system:safety", "system-safety", SAFETY_SYSTEM_PROMPT),
}


def _from_file(spec: str, where: str, base: Path) -> Condition:
    """``system:FILE``: the file's text, surrounding whitespace dropped; id ``system-<stem>``."""
    path = Path(path_in(spec.removeprefix(SYSTEM), base))
    check(path.is_file(), where, f"{spec}: no system prompt file at {path}")
    try:
        text = path.read_text(encoding="utf-8-sig").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {spec}: cannot read {path}: {exc}") from None
    check(bool(text), where, f"{spec}: the system prompt file {path} is empty")
    stem = re.sub(r"[^A-Za-z0-9_.]", "_", path.stem)
    return Condition(spec, f"system-{stem}", text)


def condition(value: object, where: str, base: Path) -> Condition:
    """One condition spec, checked; a file is read now, so a missing one stops the run."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a condition (text), got {value!r}")
    if value in NAMED:
        return NAMED[value]
    check(
        value.startswith(SYSTEM) and len(value) > len(SYSTEM),
        where,
        f"unknown condition {value!r}; expected template, system:none, system:safety or "
        "system:FILE",
    )
    return _from_file(value, where, base)


def conditions(value: object, where: str, base: Path) -> tuple[Condition, ...]:
    """A non-empty list of conditions whose ids (as test ids show them) are distinct."""
    check(isinstance(value, list | tuple) and bool(value), where, "expected a non-empty list")
    assert isinstance(value, list | tuple)
    found: dict[str, Condition] = {}
    for item in value:
        chosen = condition(item, where, base)
        if chosen.id in found:
            raise ConfigError(
                f"{where}: {found[chosen.id].spec!r} and {chosen.spec!r} both have the test id "
                f"{chosen.id!r}; name each condition once (rename a file whose stem clashes)"
            )
        found[chosen.id] = chosen
    return tuple(found.values())
