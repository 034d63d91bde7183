"""One setting and the surfaces it appears on: a table key, a ``--safety-*`` option, an
``evaluate`` flag. ``schema`` declares every one of them with this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune_safety.config import checks as v
from finetune_safety.config.checks import Check

OPTION_PREFIX = "--safety-"
#: The section of the table that holds the gate's limits (global, or per category).
THRESHOLDS = "thresholds"


def batch_size_text(text: str) -> int | str:
    """``auto`` stays text, a whole number becomes an int; anything else is left for the check."""
    return int(text) if text.isascii() and text.isdigit() else text


@dataclass(frozen=True)
class Setting:
    """One setting and where it appears.

    ``check`` validates a table value, and a command-line value after ``parse`` turned its text
    into the table's type; ``check_arg`` replaces it for command-line values of another form.
    ``parse`` None makes the option a switch. ``table``, ``option`` and ``flag`` say which
    surfaces carry the setting: a table key (under ``section``), a ``--safety-<option>`` pytest
    option, an ``evaluate`` flag ``--<name>``. ``config`` False: the option is read where it is
    used (report paths; the cache directory, whose option outranks ``$FINETUNE_SAFETY_CACHE``),
    not applied to the configuration.
    """

    name: str
    help: str
    check: Check
    default: Any = None
    parse: Callable[[str], Any] | None = str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    section: str = ""
    table: bool = True
    option: str | None = ""
    flag: bool = False
    check_arg: Check | None = None
    repeat: bool = False
    config: bool = True
    #: How the help shows the default, when ``str(default)`` would not say it.
    shown: str | None = None

    @property
    def key(self) -> str:
        """The full table key, e.g. ``tool.finetune_safety.thresholds.max_rate``."""
        return ".".join(p for p in (v.TABLE, self.section, self.name) if p)

    @property
    def option_name(self) -> str:
        assert self.option is not None, f"{self.name} has no option"
        return OPTION_PREFIX + (self.option or self.name.replace("_", "-"))

    @property
    def option_dest(self) -> str:
        return self.option_name.removeprefix("--").replace("-", "_")

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    def help_text(self) -> str:
        shown = self.shown or (
            "" if self.default is None or self.default is False else str(self.default)
        )
        return f"{self.help} (default: {shown})" if shown else self.help

    def argument(self) -> dict[str, Any]:
        """argparse keywords, the same for the pytest option and the ``evaluate`` flag. Nothing
        given is None (False, [] for switches and repeats), so the table's value stands."""
        if self.parse is None:
            return {"action": "store_true", "help": self.help_text()}
        kwargs: dict[str, Any] = {"help": self.help_text(), "metavar": self.metavar}
        if self.parse is not str:
            kwargs["type"] = self.parse
        if self.choices:
            kwargs["choices"] = self.choices
        if self.repeat:
            kwargs |= {"action": "append", "default": []}
        return kwargs

    def from_table(self, value: object, rootdir: Path) -> object:
        return self.check(value, self.key, rootdir)

    def from_command_line(self, value: object, where: str, base: Path) -> object:
        return (self.check_arg or self.check)(value, where, base)


def gate_limit(name: str, text: str, check: Check, default: float | None) -> Setting:
    """A gate limit: under ``thresholds`` (global, or per category), a number on the command
    line, where it applies to every category."""
    return Setting(name, text, check, default, section=THRESHOLDS, parse=float, metavar="X")
